"""Data-parallel training under torchrun: the process group, sharded batches, gathered predictions, failures.

One model is trained by ``world_size`` processes (ranks). Every rank draws the same global batches
from the same seeded order and trains on its slice of each (rows ``rank::world_size``), so
``train.batch_size`` and ``train.lr`` are GLOBAL: the same values give the same optimisation as one
process (exactly when every slice holds as many clips and the model has no batch norm, whose
statistics stay per rank). ``DistributedDataParallel`` all-reduces the gradients. Validation and test
predictions are split the same way and gathered to every rank, so each clip is scored exactly once
and every rank takes the same early-stopping decision. Only rank 0 writes anything (MLflow, reports,
checkpoints, the packaged model). A rank that fails records its reason in the group's store before
it exits; rank 0, whose next collective then fails, ends the run FAILED with that reason.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError, RunError
from .device import DeviceChoice, usable_cores
from .metrics import SplitPredictions, predict_split

_FAILED = "zoo/failed/"
"""Store key prefix: ``zoo/failed/<rank>`` holds that rank's failure reason."""
_STOPPED = "zoo/stopped/"
"""Store key prefix: ``zoo/stopped/<rank>`` is set by a rank that stopped on SIGTERM (not killed)."""
_PROCESS = "zoo/process/"
"""Store key prefix: ``zoo/process/<rank>`` holds that rank's ``host:pid``, to tell a killed rank."""


@dataclass(frozen=True)
class Group:
    """This process's place in a distributed run (see :func:`join`)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: DeviceChoice

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """What a run records about its processes: ``world_size``, backend and devices."""
        devices = f"{self.world_size} x {self.device.type}"
        return {"distributed.world_size": self.world_size, "distributed.backend": self.backend,
                "distributed.devices": devices}

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's part of ``rows`` (every ``world_size``-th, from ``rank``)."""
        return rows[self.rank::self.world_size]

    def wrap(self, model: Any) -> Any:
        """``model`` under ``DistributedDataParallel`` (parameters broadcast from rank 0 here)."""
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.device.index] if self.device.type == "cuda" else None
        # No buffer broadcast: it would add a collective to every forward, evaluation's included.
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def mean(self, tensor: Any) -> Any:
        """The mean of ``tensor`` over the ranks (a new tensor)."""
        import torch.distributed as dist
        out = tensor.detach().clone()
        dist.all_reduce(out)
        return out / self.world_size

    def barrier(self) -> None:
        import torch.distributed as dist
        dist.barrier()

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        import torch.distributed as dist
        box = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        import torch.distributed as dist
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, value)
        return parts

    def rank_seed(self, seed: int) -> int:
        """A torch seed for this rank's randomness (dropout, augmentation): reproducible, differs per rank."""
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def predict(self, model: Any, split: Any, device: DeviceChoice, batch_size: int, *,
                window: int = 0, weights: Any = None) -> SplitPredictions:
        """:func:`~zoo.engine.metrics.predict_split` over the whole ``split``: each rank predicts its
        shard, every rank gets all predictions in the split's row order. ``loss``: the mean over all
        ranks' batches."""
        import torch.distributed as dist
        rows = self.shard(np.arange(len(split)))
        local = predict_split(model, split, device, batch_size, window=window, rows=rows, weights=weights)
        batches = -(-len(rows) // batch_size)
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, (rows, local.pred, local.loss, local.losses, batches))
        names = list(local.pred)
        pred: dict[str, np.ndarray] = {}
        for n in names:
            filled = [(r, p[n]) for r, p, _, _, _ in parts if len(r)]
            out = np.empty((len(split), *filled[0][1].shape[1:]), dtype=filled[0][1].dtype)
            for r, p in filled:
                out[r] = p
            pred[n] = out
        k = max(sum(b for *_, b in parts), 1)
        loss = sum(l * b for _, _, l, _, b in parts) / k
        losses = {n: sum(ls[n] * b for _, _, _, ls, b in parts) / k for n in names}
        return SplitPredictions(split.name, pred, dict(split.y_host), float(loss), losses)

    @contextlib.contextmanager
    def failures(self) -> Iterator[None]:
        """Around a rank's work: a failing rank records why before it exits; rank 0, failing because a
        collective lost that rank, raises a :class:`RunError` with the other rank's reason instead."""
        from . import preempt
        try:
            yield
        except BaseException as exc:
            if preempt.orphaned():  # the launcher, and the store it served, are gone: say why, wait on nothing
                if self.main and not isinstance(exc, preempt.Preempted):
                    raise preempt.Preempted(preempt.reason()) from exc
                raise
            store = _store()
            if self.main and threading.current_thread() is threading.main_thread():
                # torchrun's agent stops the surviving ranks with SIGTERM once one has exited: rank 0
                # must still be able to mark its run FAILED; it exits right after.
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if store is None:
                raise
            stopped = isinstance(exc, preempt.Preempted) or preempt.reason() is not None
            if not self.main:
                # A rank told to stop says so (rank 0 then knows it was not killed); one that failed says why.
                key, reason = ((f"{_STOPPED}{self.rank}", "stopped") if stopped else
                               (f"{_FAILED}{self.rank}", f"rank {self.rank} of {self.world_size} on "
                                                         f"{socket.gethostname()}: {type(exc).__name__}: {exc}"))
                with contextlib.suppress(Exception):
                    store.set(key, reason)
                raise
            other = _reported(store, self.world_size) or _killed(store, self.world_size)
            if other is not None:
                raise RunError(other) from exc
            if stopped and not isinstance(exc, preempt.Preempted):  # a collective broke as the ranks stopped
                raise preempt.Preempted(preempt.reason()) from exc
            raise

    def close(self) -> None:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def _store() -> Any:
    try:
        from torch.distributed import distributed_c10d
        return distributed_c10d._get_default_store()  # the rendezvous store torchrun's agent serves
    except Exception:  # noqa: BLE001 - no group (it never started): nothing to record into
        return None


def _reported(store: Any, world_size: int) -> str | None:
    for rank in range(1, world_size):
        key = f"{_FAILED}{rank}"
        try:
            if store.check([key]):
                return store.get(key).decode(errors="replace")
        except Exception:  # noqa: BLE001 - the store is gone too: keep the rank's own error
            return None
    return None


def _killed(store: Any, world_size: int) -> str | None:
    """The first rank on this host whose process is gone without a word (no failure, no stop recorded):
    killed by SIGKILL, the OOM killer or a crash of the interpreter."""
    import os

    from ..processes import this_host
    for rank in range(1, world_size):
        try:
            if store.check([f"{_STOPPED}{rank}"]) or not store.check([f"{_PROCESS}{rank}"]):
                continue
            host, pid = store.get(f"{_PROCESS}{rank}").decode().rsplit(":", 1)
        except Exception:  # noqa: BLE001 - the store is gone: nothing to tell
            return None
        if host != this_host():
            continue
        if not _alive(int(pid), wait=2.0):  # a process is torn down after its sockets: give it a moment
            return (f"rank {rank} of {world_size} (pid {pid} on {host}) was killed: it ended without a word "
                    f"(SIGKILL, the OOM killer or a crash)")
    return None


def _alive(pid: int, wait: float = 0.0) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet collected by its launcher, does not), after up to
    ``wait`` seconds for it to end."""
    import time
    deadline = time.monotonic() + wait
    from ..processes import pid_exists
    while pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid_exists(pid)


def join(rank: int, world_size: int, local_rank: int, local_world_size: int, device: DeviceChoice, *,
         batch_size: int) -> Group:
    """Join the process group torchrun set up (``env://``): nccl with one GPU per local rank, else gloo
    with the usable cores shared among the local ranks (unless ``train.threads`` set a number)."""
    import os

    import torch
    import torch.distributed as dist

    from .preempt import watch_launcher
    watch_launcher(os.getppid())  # the launcher killed (even by SIGKILL): this rank stops too
    if batch_size < world_size:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch, shared by {world_size} processes; "
                          f"give at least one clip per process: --batch-size {world_size} or more")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} visible); "
                              f"start at most {torch.cuda.device_count()} processes per machine (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
        device = dataclasses.replace(device, device=torch.device("cuda", local_rank))
        backend = "nccl"
    else:
        if not device.threads_set:
            torch.set_num_threads(max(1, usable_cores() // max(1, local_world_size)))
        backend = "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": device.device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(minutes=30), **kwargs)
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise RunError(f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, the launcher said "
                       f"{rank} of {world_size}; start the processes with torchrun")
    store = _store()
    if store is not None:
        import os

        from ..processes import this_host
        with contextlib.suppress(Exception):
            store.set(f"{_PROCESS}{rank}", f"{this_host()}:{os.getpid()}")
    return Group(rank, world_size, local_rank, backend, device)
