"""The optimisation loop: AdamW, lr schedule, clipping, mixed precision, early stopping.

One host sync per progress refresh (every ``refresh_steps`` steps) and one per epoch: the
running loss is accumulated on the device and read back only then.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import RunError
from ..protocols import takes_loss_weight
from . import augment
from .batches import SplitData, random_batches
from . import preempt
from .checkpoint import Checkpoint, rng_states, set_rng_states
from .trainconfig import TrainConfig, crops_per_clip
from .device import DeviceChoice
from .metrics import flat, predict_split, split_metrics
from .averaging import WeightAverage, averaging
from .stopping import BestWeights, EarlyStopping

EpochHook = Callable[[int, dict[str, float]], None]
"""Called after every epoch with ``(epoch, row)``, e.g. to log the row to a tracker."""


@dataclass
class FitResult:
    """What training did.

    ``history``: one row per epoch (``train.loss``, ``train.<task>.loss``, ``val.loss``,
    ``val.<task>.<metric>``, ``lr``, ``seconds``; with learned task weights also ``log_var.<task>``
    and ``weight.<task>``). ``best_epoch``: the epoch whose weights the
    model holds now. ``overfit``: the overfit check's outcome (None in normal training).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("nan")
    monitor: str = ""
    stopped_early: bool = False
    seconds: float = 0.0
    overfit: dict[str, Any] | None = None
    linear: list[Any] | None = None
    """The heads fitted to convergence instead (:mod:`zoo.engine.linearfit`): one ``HeadFit`` per
    task; ``history`` then has one row. None after the loop."""


def task_weights(model: Any) -> dict[str, float]:
    """Learned (uncertainty) task weighting: each task's log-variance ``log_var.<task>`` and the
    weight ``weight.<task>`` = exp(-log_var) its loss gets now; {} for fixed weights."""
    if getattr(model, "task_weighting", "fixed") != "uncertainty":
        return {}
    s = model.log_vars.detach().float().cpu().numpy()
    out = {}
    for name, v in zip(model.heads, s):
        out[f"log_var.{name}"] = float(v)
        out[f"weight.{name}"] = float(np.exp(-v))
    return out


def make_optimizer(model: Any, config: TrainConfig):
    """AdamW; 1-D parameters (biases, norm scales, task log-variances) get no weight decay."""
    import torch
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


def make_schedule(optimizer: Any, config: TrainConfig, total_steps: int, greater_is_better: bool):
    """(scheduler, kind): "step" schedulers step every batch, "epoch" ones take the val metric."""
    import torch
    if config.schedule == "cosine":
        warm = max(1, int(round(config.warmup * total_steps))) if config.warmup > 0 else 0

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total_steps - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "step"
    if config.schedule == "plateau":
        patience = max(1, config.patience // 3) if config.patience else 2
        mode = "max" if greater_is_better else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=patience), "epoch"
    return None, "none"


class _Stepper:
    """One optimisation step with optional loss scaling and clipping (shared by both loops)."""

    def __init__(self, model: Any, optimizer: Any, device: DeviceChoice, config: TrainConfig):
        import torch
        self.model, self.optimizer, self.device, self.config = model, optimizer, device, config
        self.scaler = torch.amp.GradScaler("cuda") if device.scaler else None
        self.names = list(model.heads)
        self.forward = model  # under torchrun: the model wrapped in DistributedDataParallel
        self.weights: dict[str, Any] = {}  # per task, its loss weights (train.balance), see _set_balance

    def __call__(self, batch, mix: tuple[dict, float] | None = None) -> tuple[Any, Any]:
        """Forward, backward, update; returns the detached (total, per-task) losses on the device.

        ``mix``: (the partners' targets, lam) of a mixup batch, see :func:`augment.mix_batch`."""
        import torch
        with self.device.autocast():
            out = self.forward(batch.x, batch.lengths)
            if mix is None:
                total, per = self.model.loss(out, batch.y, self.weights)
            else:
                total, per = augment.mixed_loss(self.model, out, batch.y, *mix, weights=self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if self.config.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            self.optimizer.step()
        return total.detach().float(), torch.stack([per[n].detach().float() for n in self.names])


def steady_heap() -> bool:
    """Keep freed memory mapped for reuse instead of handing it back to the OS (glibc only).

    A CPU training step frees and allocates the same large buffers (activations, gradients)
    every step. By default glibc returns freed memory at the top of its heap to the OS and moves
    its mmap threshold as it goes, so each step pays for fresh pages again: with the LSTM backbone
    this measured one to three million page faults and up to a third of the step time,
    depending on the order of earlier allocations (docs/benchmarks.md). Fixed thresholds end
    that; the process keeps its peak memory mapped until it exits, a peak it reaches on every
    step anyway.
    Process-wide and idempotent; returns False (changing nothing) where libc is not glibc.
    """
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        libc = ctypes.CDLL("libc.so.6")
    except (AttributeError, ValueError, OSError):  # no confstr / no such name / no glibc
        return False
    trim, top_pad, mmap_threshold = -1, -2, -3  # mallopt parameters, <malloc.h>
    return all([libc.mallopt(trim, 1 << 30), libc.mallopt(top_pad, 64 << 20), libc.mallopt(mmap_threshold, 32 << 20)])


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=True)


def _check_finite(value: float, epoch: int, config: TrainConfig) -> None:
    if not math.isfinite(value):
        raise RunError(
            f"the training loss became {value} in epoch {epoch} (lr {config.lr}); the model diverged: "
            f"lower the learning rate (--lr {config.lr / 10:g}), keep gradient clipping on "
            f"(train.grad_clip, now {config.grad_clip}), or check the data for extreme values"
        )


def _augmented(batch, rng: np.random.Generator, config: TrainConfig) -> tuple[Any, Any]:
    """A training batch after the configured crop, masks and mixup: ``(batch, mix or None)``."""
    if config.crop_frames > 0:
        batch = augment.crop_batch(batch, rng, config.crop_frames)
    if config.time_masks > 0 or config.freq_masks > 0:
        batch = augment.mask_batch(batch, rng, time_masks=config.time_masks, time_width=config.time_mask_width,
                                   freq_masks=config.freq_masks, freq_width=config.freq_mask_width)
    if config.mixup > 0 and len(batch.x) > 1:
        batch, partner, lam = augment.mix_batch(batch, rng, config.mixup)
        return batch, (partner, lam)
    return batch, None


def _set_balance(model: Any, train: SplitData, config: TrainConfig) -> tuple[np.ndarray | None, dict[str, Any]]:
    """``train.balance``: ``(labels, weights)``: the labels of the first classification task the
    sampler balances ("sampler"; else None), and per task the loss weights on the device that every
    ``Task.loss`` call of this run gets as its ``weight`` ("weights": the classification tasks'
    class weights, over each task's own classes). "auto" is "weights" when there is a
    classification task and nothing otherwise. A multi-label task gets per-tag positive weights
    with "weights" only: "auto" leaves it alone, so its outputs stay probabilities (weighted
    positives shift them up for rare tags). A task whose ``loss`` takes no ``weight``: see :func:`_legacy_weight`."""
    import torch
    first = None
    tagged = False
    weights: dict[str, np.ndarray] = {}
    for name, task in model.tasks.items():
        if task.kind == "multilabel":
            tagged = True
            if config.balance == "weights":
                weights[name] = augment.tag_weights(train.y_host[name])
        if task.kind != "classification":
            continue
        labels = train.y_host[name]
        first = labels if first is None else first
        if config.balance in ("weights", "auto"):
            weights[name] = augment.class_weights(labels, model.schemas[name].out_dim)
    if config.balance not in ("none", "auto") and first is None and not (config.balance == "weights" and tagged):
        raise RunError(f"train.balance={config.balance} balances classes, but the model has no classification "
                       f"task ({', '.join(model.heads)}); drop the setting (--set train.balance=none)")
    on_device: dict[str, Any] = {}
    for name, w in weights.items():
        weight = torch.from_numpy(w).to(train.device)
        if takes_loss_weight(model.tasks[name]):
            on_device[name] = weight
        else:
            _legacy_weight(name, model.tasks[name], weight, config)
    return first, on_device


def _legacy_weight(name: str, task: Any, weight: Any, config: TrainConfig) -> None:
    """A task whose ``loss(output, y)`` takes no ``weight`` (written before ``Task.loss(output, y,
    weight=None)``): one that has a ``class_weight`` (``pos_weight`` for tags) attribute gets it
    set for the run, as before, with a FutureWarning; any other cannot be weighted: an error under
    ``train.balance=weights``, a warning under "auto" (it trains unweighted)."""
    import warnings
    attr = "pos_weight" if task.kind == "multilabel" else "class_weight"
    fix = f"declare loss(output, y, weight=None) in task '{name}' (zoo.protocols.Task.loss)"
    if hasattr(task, attr):
        warnings.warn(f"task '{name}': its loss takes no weight, so train.balance={config.balance} sets "
                      f"task.{attr} for the run; this is deprecated and goes with API 2: {fix}",
                      FutureWarning, stacklevel=3)
        setattr(task, attr, weight)
    elif config.balance == "weights":
        raise RunError(f"train.balance=weights cannot weigh task '{name}': its loss(output, y) takes no weight; "
                       f"{fix}, or --set train.balance=none")
    else:
        warnings.warn(f"task '{name}' trains unweighted under train.balance={config.balance}: its loss(output, y) "
                      f"takes no weight; {fix}, or --set train.balance=none to silence this", UserWarning, stacklevel=3)


def fit(model: Any, train: SplitData, val: SplitData, config: TrainConfig, device: DeviceChoice, *,
        seed: int = 0, progress: bool = True, on_epoch: EpochHook | None = None,
        checkpoint: Checkpoint | None = None, group: Any = None) -> FitResult:
    """Train ``model`` (already on ``device``) on ``train``; keep the weights of its best epoch.

    ``checkpoint``: where the loop's whole state is saved after every epoch (after ``on_epoch``),
    and resumed from when it holds one: the result then equals an uninterrupted run's.
    ``group``: a :class:`~zoo.engine.distributed.Group` under torchrun: every rank draws the same
    global batches and trains on its shard of each, validation is gathered over the ranks.

    A backbone that declares :class:`~zoo.protocols.FixedStatistics` under linear heads is not
    trained by the loop: its heads are fitted to convergence (:mod:`zoo.engine.linearfit`, one
    history row) unless ``train.linear_fit=sgd`` or :func:`~zoo.engine.linearfit.why_not` says why not.

    The monitored value is ``train.monitor`` (default: the first task's primary validation
    metric). The best weights are copied in memory and restored at the end, also when early
    stopping ends training. Augmentation (crops, masks, mixup) touches training batches only.
    """
    if config.overfit_batches > 0:
        return overfit(model, train, config, device, seed=seed, progress=progress, on_epoch=on_epoch)
    from . import linearfit
    unfit = linearfit.why_not(model, config)
    if unfit is None:  # a fixed backbone under linear heads: a convex problem, solved rather than trained
        done = linearfit.run_fit(model, train, val, config, device, progress=progress, on_epoch=on_epoch)
        return FitResult(history=[done.row], best_epoch=1, best_score=done.score, monitor=done.monitor,
                         seconds=done.seconds, linear=done.fits)
    if device.type == "cpu":
        steady_heap()
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer(model, config)
    monitor, greater = augment.monitored(model, config.monitor)
    balance_labels, loss_weights = _set_balance(model, train, config)
    draws = _Draws(train, config, balance_labels)
    scheduler, sched_kind = make_schedule(optimizer, config, draws.steps * config.epochs, greater)
    step = _Stepper(model, optimizer, device, config)
    step.weights = loss_weights
    average = averaging(model, config.ema_epochs, draws.steps)
    aug_rng = rng  # one process: batch order and augmentation share one stream
    if group is not None:
        step.forward = group.wrap(model)
        aug_rng = np.random.default_rng([seed, group.rank])  # the order stays the same on every rank
    result = FitResult(monitor=monitor)
    best, stop = BestWeights(greater), EarlyStopping(config.patience)
    shown = ""  # the last epoch's validation summary, kept on the bar between epochs
    start = time.perf_counter()
    first = 1
    saved = checkpoint.load() if checkpoint is not None else None
    if group is not None:  # rank 0 holds the checkpoint: every rank goes on from it
        saved = group.share(saved)
    if saved is not None:
        first = _restore(saved, model, optimizer, scheduler, step, rng, result, best, stop, average)
        if group is not None:
            _restore_rank(saved, group, aug_rng, seed, first)
        start -= result.seconds
        if stop.should_stop:  # it had stopped early when it was killed
            result.stopped_early, first = True, config.epochs + 1
    bar = _progress(draws.steps * config.epochs, "train", progress)
    bar.update(draws.steps * (min(first, config.epochs + 1) - 1))
    try:
        for epoch in range(first, config.epochs + 1):
            t0 = time.perf_counter()
            rows = draws.epoch(rng)
            if group is not None:
                rows = map(group.shard, rows)
            row = _train_epoch(step, train, rows, aug_rng, config, epoch, bar, shown,
                               scheduler if sched_kind == "step" else None, group, average)
            with average.applied(model) if average is not None else contextlib.nullcontext():
                row.update(_validation(model, val, device, config, loss_weights, group))
                row["lr"] = float(optimizer.param_groups[0]["lr"])
                row.update(task_weights(model))
                row["seconds"] = time.perf_counter() - t0
                result.history.append(row)
                if epoch == 1 and monitor not in row:
                    have = ", ".join(k[4:] for k in row if k.startswith("val."))
                    raise RunError(f"train.monitor {config.monitor!r} follows '{monitor}', which validation does "
                                   f"not report; valid: {have} (e.g. --set train.monitor=macro_f1)")
                score = row.get(monitor, float("nan"))
                stop.update(best.offer(epoch, score, model))  # the averaged weights, when averaging
            result.best_epoch, result.best_score = best.epoch, best.score
            if sched_kind == "epoch":
                scheduler.step(score if not math.isnan(score) else (-math.inf if greater else math.inf))
            shown = f" | {monitor} {score:.4f} (best {result.best_score:.4f} @ {result.best_epoch})"
            bar.set_postfix_str(f"ep {epoch} loss {row['train.loss']:.4f}{shown}", refresh=True)
            if on_epoch is not None:
                on_epoch(epoch, row)
            # every rank's own random state (augmentation, dropout), so that a resumed run goes on with them
            per_rank = group.gather((aug_rng.bit_generator.state, rng_states())) if group is not None else None
            if checkpoint is not None:
                result.seconds = time.perf_counter() - start
                state = _loop_state(epoch, stop, best, model, optimizer, scheduler, step, rng, result)
                if average is not None:
                    state["average"] = {"updates": average.updates, "state": average.state}
                if per_rank is not None:
                    state["ranks"] = per_rank
                checkpoint.save(state)
            if stop.should_stop:
                result.stopped_early = True
                bar.total = bar.n
                bar.refresh()
                break
    finally:
        bar.close()
        for task in model.tasks.values():  # what _legacy_weight set
            for attr in ("class_weight", "pos_weight"):
                if hasattr(task, attr):
                    setattr(task, attr, None)
    best.restore(model)
    result.seconds = time.perf_counter() - start
    return result


class _Draws:
    """Which training rows each epoch's batches hold: every clip ``crops`` times (``train.crops_per_clip``),
    in uniformly random or bucketed batches, or balanced over the classes of ``balance_labels``
    (``train.balance=sampler``). ``steps``: batches per epoch (a last batch of one clip is dropped)."""

    def __init__(self, train: SplitData, config: TrainConfig, balance_labels: np.ndarray | None) -> None:
        self.config, self.n_clips, self.balance_labels = config, len(train), balance_labels
        self.crops = crops_per_clip(config, train.lengths_host)
        self.lengths = np.tile(train.lengths_host, self.crops)  # one draw per clip and crop
        self.steps = math.ceil(len(self.lengths) / config.batch_size)
        if len(self.lengths) % config.batch_size == 1 and self.steps > 1:
            self.steps -= 1

    def epoch(self, rng: np.random.Generator):
        """One epoch's batches of row indices, drawn from ``rng``."""
        config = self.config
        if config.balance == "sampler" and self.balance_labels is not None:
            rows = augment.balanced_batches(np.tile(self.balance_labels, self.crops), config.batch_size, rng)
        else:
            rows = random_batches(self.lengths, config.batch_size, rng, config.bucket)
        if self.crops > 1:  # draw k of clip i is row i
            rows = (r % self.n_clips for r in rows)
        return rows


def _train_epoch(step: _Stepper, train: SplitData, rows: Any, aug_rng: np.random.Generator, config: TrainConfig,
                 epoch: int, bar: Any, shown: str, step_scheduler: Any, group: Any,
                 average: WeightAverage | None = None) -> dict[str, float]:
    """One pass over ``rows`` (batches of row indices): ``{"epoch", "train.loss", "train.<task>.loss"}``,
    averaged over the steps (and over the ranks under torchrun). ``step_scheduler``: one that steps every batch;
    ``average``: the weights' moving average, updated after every step."""
    import torch
    step.model.train()
    loss_sum = torch.zeros((), device=step.device.device)
    per_sum = torch.zeros(len(step.names), device=step.device.device)
    n = 0
    for batch in train.batches(rows):  # a streamed split reads the next ones meanwhile
        total, per = step(*_augmented(batch, aug_rng, config))
        if step_scheduler is not None:
            step_scheduler.step()
        if average is not None:
            average.update(step.model)
        loss_sum += total
        per_sum += per
        n += 1
        bar.update(1)
        preempt.check()  # a SIGTERM whose exception a finaliser swallowed still stops the run here
        if n % max(1, config.refresh_steps) == 0:
            bar.set_postfix_str(f"ep {epoch} loss {float(loss_sum) / n:.4f}{shown}", refresh=False)
    if group is not None:
        loss_sum, per_sum = group.mean(loss_sum), group.mean(per_sum)
    train_loss = float(loss_sum) / n
    _check_finite(train_loss, epoch, config)
    row = {"epoch": float(epoch), "train.loss": train_loss}
    row.update({f"train.{t}.loss": float(v) / n for t, v in zip(step.names, per_sum.cpu().numpy())})
    return row


def _validation(model: Any, val: SplitData, device: DeviceChoice, config: TrainConfig, loss_weights: dict[str, Any],
                group: Any) -> dict[str, float]:
    """``val.loss`` and every ``val.<task>.<metric>`` of ``model`` now (gathered over the ranks under torchrun)."""
    if group is not None:
        preds = group.predict(model, val, device, config.eval_batch_size, window=config.crop_frames,
                              weights=loss_weights)
    else:
        preds = predict_split(model, val, device, config.eval_batch_size, window=config.crop_frames,
                              weights=loss_weights)
    return {"val.loss": preds.loss, **flat(split_metrics(model, preds), "val.")}


def overfit(model: Any, train: SplitData, config: TrainConfig, device: DeviceChoice, *, seed: int = 0,
            progress: bool = True, on_epoch: EpochHook | None = None) -> FitResult:
    """The lab's sanity check: fit the same ``overfit_batches`` batches until the loss is tiny.

    A model and pipeline that can learn must drive the loss of a handful of batches close to
    zero; if it cannot, something upstream (labels, normalisation, lr, the model) is broken.
    The model stays as it is (dropout included). ``result.overfit`` says whether it got there.
    """
    if device.type == "cpu":
        steady_heap()
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer(model, config)
    step = _Stepper(model, optimizer, device, config)
    fixed = list(random_batches(train.lengths_host, config.batch_size, rng))[: config.overfit_batches]
    batches = [train.batch(rows) for rows in fixed]
    result = FitResult(monitor="train.loss")
    start = time.perf_counter()
    reached = False
    loss = float("nan")
    bar = _progress(config.overfit_epochs, f"overfit {len(batches)} batch(es)", progress)
    try:
        for epoch in range(1, config.overfit_epochs + 1):
            model.train()
            sums = [step(b)[0] for b in batches]
            loss = float(sum(sums)) / len(sums)
            _check_finite(loss, epoch, config)
            row = {"epoch": float(epoch), "train.loss": loss}
            result.history.append(row)
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.4f} (target < {config.overfit_loss:g})", refresh=False)
            if on_epoch is not None:
                on_epoch(epoch, row)
            if loss < config.overfit_loss:
                reached = True
                break
    finally:
        bar.close()
    result.best_epoch = len(result.history)
    result.best_score = loss
    result.seconds = time.perf_counter() - start
    result.overfit = {
        "reached": reached, "epochs": len(result.history), "final_loss": loss,
        "threshold": config.overfit_loss, "batches": len(batches),
        "clips": int(sum(len(r) for r in fixed)), "first_loss": result.history[0]["train.loss"] if result.history else loss,
    }
    return result


def _loop_state(epoch: int, stop: EarlyStopping, best: BestWeights, model: Any, optimizer: Any, scheduler: Any,
                step: _Stepper, rng: np.random.Generator, result: FitResult) -> dict[str, Any]:
    """Everything :func:`fit` needs to go on after ``epoch`` as if it had never stopped."""
    return {"epoch": epoch, "waited": stop.waited, "model": model.state_dict(), "best_state": best.state,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
            "scaler": step.scaler.state_dict() if step.scaler is not None else None,
            "batch_rng": rng.bit_generator.state, "rng": rng_states(), "history": result.history,
            "best_epoch": result.best_epoch, "best_score": result.best_score, "seconds": result.seconds}


def _restore_rank(saved: dict[str, Any], group: Any, aug_rng: np.random.Generator, seed: int, first: int) -> None:
    """Under torchrun: this rank's own random states from the checkpoint when it was written by as many
    ranks; on another world size (or from a one-process checkpoint) the rank's draws start afresh from
    its seed and the epoch (the model, optimiser, schedule and batch order still go on exactly)."""
    import torch
    ranks = saved.get("ranks")
    if ranks is not None and len(ranks) == group.world_size:
        aug_state, states = ranks[group.rank]
        aug_rng.bit_generator.state = aug_state
        set_rng_states(states)
    else:
        aug_rng.bit_generator.state = np.random.default_rng([seed, group.rank, first]).bit_generator.state
        torch.manual_seed(group.rank_seed(seed) + first)


def _restore(saved: dict[str, Any], model: Any, optimizer: Any, scheduler: Any, step: _Stepper,
             rng: np.random.Generator, result: FitResult, best: BestWeights, stop: EarlyStopping,
             average: WeightAverage | None = None) -> int:
    """Put a :func:`_loop_state` back (``best``, ``stop`` and the weights' ``average`` included); returns the
    first epoch still to train."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    if step.scaler is not None and saved["scaler"] is not None:
        step.scaler.load_state_dict(saved["scaler"])
    rng.bit_generator.state = saved["batch_rng"]
    set_rng_states(saved["rng"])
    result.history = list(saved["history"])
    result.best_epoch, result.best_score, result.seconds = saved["best_epoch"], saved["best_score"], saved["seconds"]
    best.load(saved["best_epoch"], saved["best_score"], saved["best_state"],
              next(iter(model.state_dict().values())).device)
    stop.waited = saved["waited"]
    if average is not None and saved.get("average") is not None:
        average.load(int(saved["average"]["updates"]), saved["average"]["state"],
                     next(iter(model.state_dict().values())).device)
    return saved["epoch"] + 1
