"""Normalisation and batches: each split padded once, kept resident (on the GPU when there is one).

A split of N clips ``[F, T_i]`` becomes one zero-padded tensor ``x[N, F, T_max]`` plus
``lengths[N]`` and, per task, ``y[N]`` (``y[N, K]`` for a multi-label task of K tags). A batch is an index gather from it, cut to the longest
clip of the batch, so training never pads or copies from the host per step. A split that would
not fit the memory budget takes one of two other paths (``SplitData.path``):

* ``host``: the prepared clips are in memory; they stay a host list of normalised arrays and each
  batch is padded on the fly.
* ``streamed``: the prepared clips are on disk (``Prepared.on_disk``: data bigger than the budget);
  each batch reads its clips from the pack (``os.pread``, nothing mapped), normalises and pads
  them. :meth:`SplitData.batches` builds the next batches in background threads (at most
  ``PREFETCH`` ahead; pinned memory on CUDA) while the model trains on the current one.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..data.preparedset import Prepared, host_budget
from ..errors import DataError
from ..model.model import Batch
from ..protocols import HasThreshold, KeepsScale, OwnsClasses

SPLITS = ("train", "val", "test")
PATHS = ("resident", "host", "streamed")
"""How a split reaches the model (see the module's docstring)."""
PREFETCH = 4
"""Streamed batches built (or waiting) ahead of the one the model trains on."""
PREFETCH_THREADS = 2
"""Threads that build streamed batches (reading with ``os.pread`` and numpy's arithmetic release the GIL)."""


@dataclass(frozen=True)
class Normaliser:
    """Per-bin mean and standard deviation of the training split, stored with the model.

    ``mean``, ``std``: float32 ``[F]``. ``apply(x[F, T]) -> (x - mean) / std``.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, arrays: Sequence[np.ndarray], keep: list[slice] | None = None) -> "Normaliser":
        """Statistics over every frame of ``arrays`` (each ``[F, T_i]``), in float64.

        ``arrays`` may read each clip from disk when asked (``Prepared.clips``): they are visited
        one at a time. ``keep``: rows left as they are (mean 0, std 1), see :func:`unscaled_rows`.
        """
        if len(arrays) == 0:
            raise DataError("cannot compute normalisation statistics: the training split is empty")
        F = arrays[0].shape[0]
        total = np.zeros(F)
        squares = np.zeros(F)
        frames = 0
        for a in arrays:
            a64 = a.astype(np.float64, copy=False)
            total += a64.sum(axis=1)
            squares += np.square(a64).sum(axis=1)
            frames += a.shape[1]
        mean = total / frames
        var = np.maximum(squares / frames - mean**2, 0.0)
        std = np.sqrt(var)
        # A constant bin (e.g. a silent mel band) would divide by ~0: leave its scale alone.
        std[std < 1e-6] = 1.0
        for rows in keep or ():
            mean[rows], std[rows] = 0.0, 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x[F, T]`` -> normalised float32 ``[F, T]``."""
        return ((x - self.mean[:, None]) / self.std[:, None]).astype(np.float32, copy=False)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Normaliser":
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))


def task_classes(task: Any, prepared: Prepared) -> tuple[str, ...]:
    """What ``task.schema`` is given for ``prepared``: its classes (a classification's own when it
    declares them, :class:`~zoo.protocols.OwnsClasses`); a multi-label task's tag columns."""
    if task.kind == "multilabel":
        return tuple(task.resolve(sorted(prepared.targets), prepared.description))
    if task.kind == "classification" and isinstance(task, OwnsClasses):
        return tuple(task.classes)
    return tuple(prepared.classes)


def class_lookup(name: str, task: Any, labels: Sequence[str], where: str) -> np.ndarray:
    """int64 ``[len(labels)]``: the index into ``task.classes`` of each data-set label (``-1``: the
    task leaves it out), by the task's ``map_label`` (:class:`~zoo.protocols.OwnsClasses`).

    A ``map_label`` that gives something other than one of its classes or None is a ``PluginError``
    naming the task, the label and what it gave; a task with fewer than 2 classes, or classes
    named twice, is one too."""
    from ..errors import PluginError
    classes = tuple(task.classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not all(isinstance(c, str) for c in classes):
        raise PluginError(f"task '{name}': classes {classes!r} must name at least 2 classes, each once (strings)")
    index = {c: i for i, c in enumerate(classes)}
    out = np.full(len(labels), -1, dtype=np.int64)
    for i, label in enumerate(labels):
        got = task.map_label(label)
        if got is None:
            continue
        if got not in index:
            raise PluginError(f"task '{name}': map_label({label!r}) of {where} gave {got!r}, which is not one of its "
                              f"classes ({', '.join(classes)}); return one of them, or None to leave such clips out")
        out[i] = index[got]
    return out


def tag_targets(prepared: Prepared, task: Any) -> np.ndarray:
    """A multi-label task's float32 ``[N, K]`` targets (1 on, 0 off, NaN missing) from its columns.

    A tag that is on for every clip with a value, or for none, is warned about (the threshold
    decides that; it cannot be learned or scored)."""
    import warnings
    columns = task_classes(task, prepared)
    values = np.stack([np.asarray(prepared.targets[c], dtype=np.float32) for c in columns], axis=1)
    y = task.encode(values)
    flat = [c for k, c in enumerate(columns) if len(np.unique(y[~np.isnan(y[:, k]), k])) < 2]
    if flat:
        warnings.warn(
            f"task '{task.name}': tag(s) {', '.join(flat)} are on for every clip or for none at threshold "
            f"{task.threshold if isinstance(task, HasThreshold) else '?'}; they cannot be learned or scored: choose another threshold "
            f"(--set {task.name}.threshold=...) or leave them out of --set {task.name}.columns", UserWarning,
            stacklevel=3)
    return y


def tag_note(name: str, task: Any, prepared: Prepared, y_train: np.ndarray) -> str:
    """One line: a multi-label task's tags and how many training clips have each on (of those with a value)."""
    tags = task.schema(task_classes(task, prepared)).classes
    known = ~np.isnan(y_train)
    on = ((y_train >= 0.5) & known).sum(axis=0)
    counts = ", ".join(f"{t} {int(n)}/{int(k)}" for t, n, k in zip(tags, on, known.sum(axis=0)))
    threshold = task.threshold if isinstance(task, HasThreshold) else None
    at = f" at threshold {threshold:g}" if isinstance(threshold, float) else ""
    return f"{name}: {len(tags)} tags; training clips with each on{at}: {counts}"


def task_targets(prepared: Prepared, tasks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per task the array it learns from: int64 labels (-1 missing), float32 values (NaN missing),
    or a multi-label task's float32 ``[N, K]`` (:func:`tag_targets`)."""
    out: dict[str, np.ndarray] = {}
    for name, task in tasks.items():
        if task.kind == "multilabel":
            out[name] = tag_targets(prepared, task)
        elif task.kind == "classification" and isinstance(task, OwnsClasses):
            lookup = class_lookup(name, task, prepared.classes, prepared.description)
            labels = np.asarray(prepared.labels, dtype=np.int64)
            y = np.where(labels >= 0, lookup[np.clip(labels, 0, None)] if len(lookup) else -1, -1).astype(np.int64)
            found = sorted({task.classes[i] for i in np.unique(y) if i >= 0})
            if len(found) < 2:
                raise DataError(
                    f"task '{name}' classifies clips into {', '.join(task.classes)}, but the labels of "
                    f"{prepared.description} ({', '.join(prepared.classes) or 'none'}) give it "
                    f"{len(found)} of them {found}; it needs clips of at least 2 (use data with those labels)")
            out[name] = y
        elif task.kind == "classification":
            if len(prepared.classes) < 2:
                raise DataError(
                    f"task '{name}' classifies clips, but {prepared.description} has "
                    f"{len(prepared.classes)} class(es) {list(prepared.classes)}; it needs at least 2 "
                    f"labelled classes (use a data set with labels, or a regression task)"
                )
            out[name] = np.asarray(prepared.labels, dtype=np.int64)
        else:
            if task.target not in prepared.targets:
                have = ", ".join(sorted(prepared.targets)) or "(none)"
                raise DataError(
                    f"task '{name}' regresses '{task.target}', but {prepared.description} has no "
                    f"'{task.target}' values; targets present: {have}; pick a task among them or "
                    f"a data set that has '{task.target}'"
                )
            out[name] = np.asarray(prepared.targets[task.target], dtype=np.float32)
    return out


def memory_budget(device: Any) -> int:
    """Bytes a resident copy of the data may take: half the free GPU memory, or a quarter of RAM."""
    import torch
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return host_budget()


@dataclass
class SplitData:
    """One split ready for the model: padded ``x[N, F, T_max]`` (or a host list, or clips read from
    disk per batch: ``path``), lengths, targets.

    ``index`` maps row i back to the clip ``index[i]`` of the Prepared it came from. ``need``: the
    bytes of the padded split (what the budget was compared with).
    """

    name: str
    index: np.ndarray
    lengths_host: np.ndarray
    lengths: Any
    y: dict[str, Any]
    y_host: dict[str, np.ndarray]
    device: Any
    x: Any = None
    arrays: list[np.ndarray] = field(default_factory=list)
    path: str = "resident"
    need: int = 0
    source: Sequence[np.ndarray] | None = None
    """Streamed: the Prepared's clips (``source[index[i]]`` reads row i from disk)."""
    norm: Normaliser | None = None
    n_bins: int = 0

    def __len__(self) -> int:
        return len(self.index)

    @property
    def resident(self) -> bool:
        return self.x is not None

    def batch(self, rows: np.ndarray) -> Batch:
        """The batch of rows ``rows``: ``x[B, F, T]`` with T the longest of these clips."""
        if self.x is not None:
            import torch
            t = int(self.lengths_host[rows].max())
            ii = torch.as_tensor(rows, dtype=torch.long).to(self.device, non_blocking=True)
            # Indexing, not index_select: on the CPU (torch 2.14) index_select of a contiguous
            # [N, F, T] tensor (a batch holding the split's longest clip) took ~200 ms for 32 rows,
            # 28x the gather itself (docs/benchmarks.md, "Data bigger than memory").
            return self._batch(ii, self.x[ii, :, :t])
        return self._to_batch(rows, self._host(rows))

    def batches(self, row_batches: Iterable[np.ndarray]) -> Iterator[Batch]:
        """``batch(rows)`` for each of ``row_batches``, in order. A streamed split builds up to
        :data:`PREFETCH` batches ahead in background threads (reading, normalising, padding);
        the others build each when asked, as ``batch`` does."""
        if self.path != "streamed" or PREFETCH < 1:
            for rows in row_batches:
                yield self.batch(rows)
            return
        yield from _prefetched(self, row_batches)

    def _empty(self, rows: np.ndarray) -> Any:
        """An uninitialised host tensor (pinned on CUDA) for the batch of ``rows``."""
        import torch
        t = int(self.lengths_host[rows].max())
        F = self.n_bins if self.path == "streamed" else self.arrays[0].shape[0]
        return torch.empty((len(rows), F, t), dtype=torch.float32, pin_memory=self.device.type == "cuda")

    def _host(self, rows: np.ndarray, out: Any = None) -> Any:
        """Rows ``rows`` padded on the host into ``out`` (default: a new :meth:`_empty`): ``[B, F, T]``."""
        out = self._empty(rows) if out is None else out
        host = out.numpy()
        F, t = host.shape[1], host.shape[2]
        read = getattr(self.source, "read", None)
        scratch = _scratch(F * t) if read is not None else None
        for j, r in enumerate(rows):
            if self.path == "streamed":
                a = read(self.index[r], scratch) if read is not None else self.source[self.index[r]]
                _normalise_into(host[j, :, : a.shape[1]], a, self.norm)
            else:
                a = self.arrays[r]
                host[j, :, : a.shape[1]] = a
            host[j, :, a.shape[1]:] = 0.0  # only the padding: every other value was just written
        return out

    def _to_batch(self, rows: np.ndarray, host: Any) -> Batch:
        import torch
        ii = torch.as_tensor(rows, dtype=torch.long).to(self.device, non_blocking=True)
        return self._batch(ii, host.to(self.device, non_blocking=True))

    def _batch(self, ii: Any, x: Any) -> Batch:
        return Batch(x, self.lengths.index_select(0, ii), {k: v.index_select(0, ii) for k, v in self.y.items()})


_THREAD = threading.local()


def _scratch(values: int) -> np.ndarray:
    """This thread's float32 buffer of at least ``values`` values (a clip is read into it)."""
    buf = getattr(_THREAD, "scratch", None)
    if buf is None or buf.size < values:
        buf = _THREAD.scratch = np.empty(values, dtype=np.float32)
    return buf


def _normalise_into(out: np.ndarray, a: np.ndarray, norm: Normaliser) -> None:
    """``out[:] = norm.apply(a)`` without the temporary (the same float32 operations, so the same bits)."""
    np.subtract(a, norm.mean[:, None], out=out)
    np.divide(out, norm.std[:, None], out=out)


_POOL: tuple[int, Any] | None = None


def _pool() -> Any:
    """The process's prefetching threads, made once and made again in a forked child. The same
    threads every epoch, and batch buffers allocated by the loop's thread: with new threads per
    epoch, each took fresh malloc arenas and the resident memory grew epoch after epoch (about
    100 MiB over 16 epochs in bench/streaming.py) until glibc had no arena left to give."""
    global _POOL
    from concurrent.futures import ThreadPoolExecutor
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="zoo-prefetch"))
    return _POOL[1]


def _prefetched(split: SplitData, row_batches: Iterable[np.ndarray]) -> Iterator[Batch]:
    """``split``'s batches of ``row_batches``, in order, each built by one of ``PREFETCH_THREADS``
    background threads while the model trains on earlier ones: at most ``PREFETCH`` batches are
    built or waiting at once, so host memory stays bounded whatever the split's size. An error in a
    thread is raised here; leaving the loop early cancels what was not started."""
    from collections import deque

    rows_left = iter(row_batches)
    pending: deque = deque()
    pool = _pool()

    def fill() -> None:
        while len(pending) < PREFETCH:
            rows = next(rows_left, None)
            if rows is None:
                return
            # The buffer is allocated here, in the loop's thread: the threads only fill it, so the
            # batches' memory is freed to and reused from one malloc arena.
            pending.append((rows, pool.submit(split._host, rows, split._empty(rows))))

    try:
        fill()
        while pending:
            rows, job = pending.popleft()
            host = job.result()
            fill()
            yield split._to_batch(rows, host)
    finally:
        for _, job in pending:
            if not job.cancel():
                job.exception()  # wait for a batch being built: nothing outlives the loop


def unscaled_rows(features: Mapping[str, Any]) -> list[slice]:
    """The stacked rows of the features (in stacking order) whose optional ``standardise`` is False.

    Such a feature already has the scale a pretrained model was trained on (the AST's normalised
    filter banks, a raw waveform): standardising it per bin would feed the model other inputs.
    """
    out, row = [], 0
    for feature in features.values():
        if isinstance(feature, KeepsScale) and not feature.standardise:
            out.append(slice(row, row + int(feature.n_bins)))
        row += int(feature.n_bins)
    return out


def make_split(name: str, prepared: Prepared, rows: np.ndarray, targets: Mapping[str, np.ndarray],
               norm: Normaliser, device: Any, budget: int | None = None, path: str | None = None) -> SplitData:
    """Normalise and pad the clips ``rows`` of ``prepared``; put them on ``device`` if they fit.

    ``budget``: bytes the padded split may take (None: :func:`memory_budget`). A split over it is
    ``streamed`` from disk when ``prepared`` is on disk, else kept as a ``host`` list. ``path``
    forces one of :data:`PATHS` (benchmarks, tests; ``streamed`` reads ``prepared.x`` per batch
    whatever it is).
    """
    import torch
    rows = np.asarray(rows, dtype=np.int64)
    lengths = prepared.lengths[rows] if len(rows) else np.zeros(0, dtype=np.int64)
    y_host = {k: v[rows] for k, v in targets.items()}
    y = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in y_host.items()}
    split = SplitData(name, rows, lengths, torch.from_numpy(lengths).to(device), y, y_host, device)
    if not len(rows):
        return split
    F, t_max = prepared.n_bins, int(lengths.max())
    split.need = len(rows) * F * t_max * 4
    if path is None:
        limit = memory_budget(device) if budget is None else budget
        path = "resident" if split.need <= limit else ("streamed" if prepared.on_disk else "host")
    if path not in PATHS:
        raise ValueError(f"make_split path {path!r}: one of {', '.join(PATHS)}, or None to choose by the budget")
    split.path = path
    if path == "resident":
        host = np.zeros((len(rows), F, t_max), dtype=np.float32)
        for j, i in enumerate(rows):
            a = prepared.x[i]
            _normalise_into(host[j, :, : a.shape[1]], a, norm)
        split.x = torch.from_numpy(host).to(device)
    elif path == "host":
        split.arrays = [norm.apply(prepared.x[i]) for i in rows]
    else:
        split.source, split.norm, split.n_bins = prepared.x, norm, F
    return split


def make_splits(prepared: Prepared, tasks: Mapping[str, Any], norm: Normaliser, device: Any,
                budget: int | None = None) -> dict[str, SplitData]:
    """``{"train", "val", "test": SplitData}``; a missing split is an error naming the fix.

    The resident splits share ``budget`` (None: :func:`memory_budget`; on CUDA it is measured
    again for each split, so it already counts the splits put there before)."""
    targets = task_targets(prepared, tasks)
    out = {}
    spent = 0
    for name in SPLITS:
        rows = prepared.indices(name)
        if len(rows) == 0:
            counts = {s: int((prepared.splits == s).sum()) for s in SPLITS}
            raise DataError(
                f"{prepared.description}: the '{name}' split is empty (clips per split: {counts}); "
                f"every run needs train, val and test clips: raise --limit, or give the data set "
                f"more clips or a split column"
            )
        if budget is None and getattr(device, "type", "cpu") == "cuda":
            left = None
        else:
            left = (memory_budget(device) if budget is None else budget) - spent
        out[name] = make_split(name, prepared, rows, targets, norm, device, left)
        spent += out[name].need if out[name].resident else 0
    return out


def describe_paths(splits: Mapping[str, SplitData], budget: int | None) -> dict[str, Any]:
    """The run's record of how each split reached the model: ``data.<split>.path`` (resident, host,
    streamed) and ``data.memory_budget`` (bytes, or "auto")."""
    out: dict[str, Any] = {f"data.{name}.path": s.path for name, s in splits.items()}
    out["data.memory_budget"] = budget if budget is not None else "auto"
    return out


def random_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   bucket: bool = False) -> Iterator[np.ndarray]:
    """Row indices of one epoch's batches, every row once.

    Uniformly random by default; with ``bucket``, rows of similar length are batched together
    (less padding) and the batches come in random order. A last batch of a single row is merged
    into the one before (batch norm cannot normalise one sample) rather than dropped.
    """
    n = len(lengths)
    if bucket:
        jitter = rng.random(n)
        order = np.lexsort((jitter, lengths))
    else:
        order = rng.permutation(n)
    chunks = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    if bucket:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return iter(chunks)


def ordered_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches: rows sorted by length (little padding); callers restore the order."""
    order = np.argsort(lengths, kind="stable")
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
