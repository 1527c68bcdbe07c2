"""Linear heads fitted to convergence on a fixed backbone (``FixedStatistics``) instead of trained by SGD.

When the backbone's output is a fixed function of the clip apart from a standardisation (the
``stats`` baseline), a linear head on it is a convex problem with one best answer, and a few SGD
epochs with early stopping stop short of it. Here the backbone pools every training clip whole (no
crops, mixup or masks; eval mode), its standardisation is set from the training set (mean and
variance, a standard scaler), and each task's output layer is fitted by its kind:

- classification: multinomial logistic regression with an L2 penalty on the weights (not the
  bias), fitted by L-BFGS in float64, class weights from ``train.balance`` as scikit-learn's
  ``class_weight``, label smoothing as the task's loss has it;
- regression: ridge regression in closed form (squared error; the bias is not penalised);
- multilabel: one L2 logistic regression per tag (binary cross-entropy), one C for all tags;

for every value of a penalty grid (:data:`C_GRID`, :data:`ALPHA_GRID`), then keeps the one with the
best validation score (the task's primary metric, or the metric ``train.monitor`` names; ties go to
the lower validation loss, then to the stronger penalty). The penalty is scikit-learn's: the
logistic objective is ``C * sum_i w_i * loss_i + |W|^2 / 2``, the ridge one
``|y - Z w - b|^2 + alpha * |w|^2``, so the same C or alpha gives the same model.

The fit is deterministic (no random draw anywhere): every seed of a run gets the same model. The
weights land in the model's own layers, so evaluation, packaging, tracking and ``zoo predict``
proceed as after SGD.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import RunError
from ..protocols import BackboneOutput, FixedStatistics, HasConfig
from . import augment
from .batches import SplitData, ordered_batches

C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 2, 11))
"""Inverse L2 penalties tried for logistic heads: 1e-3 ... 1e2 in half-decades (scikit-learn's C).
On standardised inputs C = 1e-3 keeps the weights near 0 (about the class priors): the heaviest
penalty worth trying; at C = 1e2 the penalty is negligible beside a few hundred clips' losses, about
an unpenalised fit. Half a decade is the finest step that matters: scores differ little within it,
and validation sets of ~100 clips cannot tell finer steps apart (one clip is 0.01 of accuracy)."""

ALPHA_GRID: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 4, 13))
"""Ridge penalties tried for regression heads: 1e-2 ... 1e4 in half-decades (scikit-learn's alpha).
The penalty adds alpha to each eigenvalue of ``Z'Z``, which on standardised inputs is about the
number of training clips N for a direction the data spans well: 1e-2 is no penalty for any N, 1e4
shrinks hard up to N of a few thousand, where hundreds of correlated statistics need it."""

KINDS = ("classification", "regression", "multilabel")
"""Task kinds with a fit here; any other kind sends the model to SGD."""

_MAX_ITER = 15000
_GTOL = 1e-9
_FTOL = 64 * np.finfo(float).eps  # as scikit-learn's lbfgs: stop only when the objective no longer moves
_POOL_ROWS = 4096
_ONE_THREAD_WORK = 20_000_000


@dataclass
class HeadFit:
    """How one task's output layer was fitted: the penalty (``C`` or ``alpha``) chosen, the
    validation ``metric`` it was chosen on and its ``score``, and ``path``: one entry per grid value
    (penalty, validation score and loss, L-BFGS iterations, converged)."""

    task: str
    kind: str
    penalty: str
    value: float
    metric: str
    score: float
    path: list[dict[str, float]] = field(default_factory=list)
    converged: bool = True
    note: str = ""

    def describe(self) -> str:
        where = f"val {self.metric} {self.score:.4f}" if math.isfinite(self.score) else "no validation score"
        return f"{self.task} {self.penalty}={self.value:g} ({where}" + (f"; {self.note})" if self.note else ")")


def why_not(model: Any, config: Any) -> str | None:
    """None when :func:`fit_heads` fits ``model``; else why not: "" when the backbone does not declare
    :class:`~zoo.protocols.FixedStatistics` or ``train.linear_fit=sgd`` (nothing to explain), a
    sentence for the log when it does but something else needs SGD."""
    if config.linear_fit == "sgd" or not isinstance(model.backbone, FixedStatistics):
        return ""
    if config.crop_frames > 0:
        return (f"train.crop_frames={config.crop_frames} evaluates the model on windows, and the closed-form fit "
                f"pools whole clips (--set train.crop_frames=0 fits it)")
    for name, task in model.tasks.items():
        problem = _head_problem(name, model.heads[name], task)
        if problem:
            return problem
    return None


def _head_problem(name: str, head: Any, task: Any) -> str:
    from torch import nn

    from ..model.model import Head
    if task.kind not in KINDS:
        return f"task '{name}' is of kind '{task.kind}', which has no closed-form fit (only {', '.join(KINDS)})"
    if not isinstance(head, Head) or not isinstance(getattr(head, "out", None), nn.Linear):
        return f"task '{name}' has its own head ({type(head).__name__}), not the zoo's linear head"
    if any(isinstance(m, nn.Linear) for m in head.body.modules()):
        return (f"the head of task '{name}' has a hidden layer ({name}.hidden="
                f"{getattr(task.config, 'hidden', '?')}): not a linear model")
    if head.bounded:
        return (f"the head of task '{name}' is bounded (a sigmoid on its output), not linear "
                f"(--set {name}.bounded=false fits it in closed form)")
    loss = getattr(task.config if isinstance(task, HasConfig) else None, "loss", "mse")
    if task.kind == "regression" and loss != "mse":
        return (f"task '{name}' trains with loss {loss}, and ridge regression minimises the squared error "
                f"(--set {name}.loss=mse fits it in closed form)")
    return ""


# -- pooling ---------------------------------------------------------------------------------------------
def pool_split(backbone: Any, split: SplitData, batch_size: int, *, progress: bool = False) -> np.ndarray:
    """``backbone.fixed_pool`` of every clip of ``split``, whole, in the split's row order: float64 ``[N, D]``."""
    import torch
    from tqdm.auto import tqdm
    order = ordered_batches(split.lengths_host, batch_size)
    out = np.zeros((len(split), backbone.out_dim), dtype=np.float64)
    bar = tqdm(total=len(order), desc=f"pool {split.name}", unit="batch", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        with torch.inference_mode():
            for rows, batch in zip(order, split.batches(order)):
                z = backbone.fixed_pool(batch.x, batch.lengths)
                out[rows] = z.detach().to("cpu", torch.float64).numpy()
                bar.update(1)
    finally:
        bar.close()
    return out


def _head_inputs(model: Any, name: str, standardised: list[Any]) -> np.ndarray:
    """What the output layer of task ``name`` sees in eval mode: ``head.embed`` of the standardised statistics."""
    import torch
    head = model.heads[name]
    with torch.inference_mode():
        parts = [head.embed(BackboneOutput(z)).to("cpu", torch.float64).numpy() for z in standardised]
    return np.concatenate(parts) if parts else np.zeros((0, head.out.in_features))


# -- the fits -------------------------------------------------------------------------------------------
def logistic_path(Z: np.ndarray, y: np.ndarray, n_out: int, Cs: tuple[float, ...], *,
                  class_weight: np.ndarray | None = None,
                  label_smoothing: float = 0.0, multilabel: bool = False,
                  on_step: Callable[[], None] | None = None) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """L2-penalised logistic regression for each C of ``Cs`` (ascending order warm-starts each from
    the last): ``[(W[D, K], b[K], info)]``, ``info``: iterations, converged.

    Multinomial: ``y[N]`` class indices (``-1``: unlabelled, left out), minimising
    ``sum_i w_i CE_i / N + |W|^2 / (2 C N)`` (scikit-learn's objective divided by C N), ``w_i`` the
    ``class_weight`` of clip i's class. Multilabel: ``y[N, K]`` in {0, 1} (NaN or negative: unknown),
    one such binary problem per tag over its known clips, solved together (they share nothing);
    ``class_weight[K]`` then weighs each tag's positive term.
    """
    # numpy rather than torch autograd: these are small dense products, and torch's intra-op threads
    # made each evaluation ~100x slower on a busy 2-core machine.
    from scipy.optimize import minimize
    from scipy.special import expit, log_softmax
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    N, D = Z.shape
    K = n_out
    weight = None if class_weight is None else np.asarray(class_weight, dtype=np.float64)
    if multilabel:
        yy = np.asarray(y, dtype=np.float64).reshape(N, K)
        with np.errstate(invalid="ignore"):
            mask = (np.isfinite(yy) & (yy >= 0)).astype(np.float64)
        target = np.where(mask > 0, yy, 0.0)
        counts = np.maximum(mask.sum(0), 1.0)  # [K]: each tag's problem is over its known clips
        pos = np.ones(K) if weight is None else weight
    else:
        yy = np.asarray(y, dtype=np.int64)
        keep = yy >= 0
        Z, yy = Z[keep], yy[keep]
        n = max(len(yy), 1)
        w = np.ones(K) if weight is None else weight
        # The task's cross-entropy (torch's, with weight and label smoothing, summed) as
        # -sum_ik A_ik log p_ik: A = (1 - eps) w_y onehot(y) + eps / K * w.
        A = np.zeros((len(yy), K))
        A[np.arange(len(yy)), yy] = (1.0 - label_smoothing) * w[yy]
        A += label_smoothing / K * w[None, :]
        A_sum = A.sum(1, keepdims=True)

    def objective(theta: np.ndarray, C: float) -> tuple[float, np.ndarray]:
        W, b = theta[: D * K].reshape(D, K), theta[D * K:]
        logits = Z @ W + b
        if multilabel:
            # -[pos t log s(x) + (1 - t) log(1 - s(x))], log s(x) = -log(1 + e^-x)
            per = (pos * target * np.logaddexp(0.0, -logits) + (1.0 - target) * np.logaddexp(0.0, logits)) * mask
            f = float((per.sum(0) / counts).sum() + ((W * W).sum(0) / (2 * C * counts)).sum())
            G = (expit(logits) * (pos * target + 1.0 - target) - pos * target) * mask / counts
            gW = Z.T @ G + W / (C * counts)
        else:
            logp = log_softmax(logits, axis=1)
            f = float(-(A * logp).sum() / n + (W * W).sum() / (2 * C * n))
            G = (np.exp(logp) * A_sum - A) / n
            gW = Z.T @ G + W / (C * n)
        return f, np.concatenate([gW.ravel(), G.sum(0)])

    theta = np.zeros(D * K + K)
    out = []
    with _blas_threads(N * D * K):
        for C in Cs:
            res = minimize(objective, theta, args=(C,), jac=True, method="L-BFGS-B",
                           options={"maxiter": _MAX_ITER, "gtol": _GTOL, "ftol": _FTOL, "maxls": 50})
            theta = res.x
            out.append((theta[: D * K].reshape(D, K).copy(), theta[D * K:].copy(),
                        {"iterations": int(res.nit), "converged": bool(res.success)}))
            if on_step is not None:
                on_step()
    return out


def _blas_threads(work: int):
    """One BLAS thread for products of fewer than :data:`_ONE_THREAD_WORK` multiply-adds: L-BFGS runs
    thousands of small ones in a row, and waking a thread pool for each cost 20x their time on a busy
    2-core machine (420 clips x 420 statistics x 10 classes: 23 ms a product on 2 threads, 1 ms on one)."""
    import contextlib
    if work >= _ONE_THREAD_WORK:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency
    return threadpool_limits(limits=1, user_api="blas")


def ridge_path(Z: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """Ridge regression for each alpha of ``alphas``, in closed form over one eigendecomposition:
    ``[(w[D, 1], b[1], info)]`` minimising ``|y - Z w - b|^2 + alpha |w|^2`` over the clips whose
    target is known (NaN: unknown). The bias is not penalised (inputs and target are centred)."""
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y)
    Z, y = np.asarray(Z, dtype=np.float64)[keep], y[keep]
    if len(y) == 0:
        return [(np.zeros((Z.shape[1], 1)), np.zeros(1), {"iterations": 0, "converged": True}) for _ in alphas]
    zm, ym = Z.mean(0), y.mean()
    Zc = Z - zm
    evals, V = np.linalg.eigh(Zc.T @ Zc)
    evals = np.clip(evals, 0.0, None)  # rounding can leave an exact 0 slightly negative
    proj = V.T @ (Zc.T @ (y - ym))
    out = []
    for alpha in alphas:
        w = V @ (proj / (evals + alpha))
        out.append((w[:, None], np.array([ym - zm @ w]), {"iterations": 0, "converged": True}))
    return out


# -- one task's output layer --------------------------------------------------------------------------
def _labelled(kind: str, y: np.ndarray) -> int:
    if kind == "classification":
        return int((y >= 0).sum())
    if kind == "regression":
        return int(np.isfinite(y).sum())
    y = np.asarray(y, dtype=np.float64)
    return int((np.isfinite(y) & (y >= 0)).any(axis=tuple(range(1, y.ndim))).sum()) if y.ndim > 1 else 0


def _selection(model: Any, config: Any, name: str) -> tuple[str, bool]:
    """The validation metric task ``name``'s penalty is chosen on: the metric ``train.monitor`` names for
    this task (``loss``: its validation loss), else the task's primary metric."""
    key, greater = augment.monitored(model, config.monitor)
    if key == "val.loss":
        return "loss", False
    prefix = f"val.{name}."
    if key.startswith(prefix):
        return key[len(prefix):], greater
    task = model.tasks[name]
    return task.primary_metric, bool(task.greater_is_better)


def _scored(task: Any, schema: Any, Z: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray,
            squeeze: bool) -> tuple[dict[str, float], float]:
    """The task's own metrics and loss (unweighted, on the host) of the output ``Z @ W + b`` against ``y``."""
    import torch
    out = torch.from_numpy(Z @ W + b).float()
    if squeeze:
        out = out.squeeze(-1)
    metrics = task.metrics(task.predict(out), y, schema) if len(y) else {}
    with torch.no_grad():
        loss = float(task.loss(out, torch.from_numpy(np.asarray(y)))) if len(y) else float("nan")
    return metrics, loss


def _better(score: float, loss: float, best: tuple[float, float] | None, greater: bool) -> bool:
    if best is None:
        return True
    if math.isnan(score) != math.isnan(best[0]):
        return not math.isnan(score)
    if not math.isnan(score) and score != best[0]:
        return score > best[0] if greater else score < best[0]
    return loss < best[1]  # equal scores (common with accuracy on ~100 clips): the better-calibrated fit


def fit_head(model: Any, name: str, Z: np.ndarray, y: np.ndarray, Zv: np.ndarray, yv: np.ndarray, config: Any,
             device: Any, *, class_weight: np.ndarray | None = None, grid: tuple[float, ...] | None = None,
             progress: bool = False) -> HeadFit:
    """Fit task ``name``'s output layer on head inputs ``Z`` (train) for every value of ``grid``
    (default :data:`C_GRID` or :data:`ALPHA_GRID`), choose on ``Zv`` (validation), and write the
    chosen weights into ``model.heads[name].out``."""
    import torch
    from tqdm.auto import tqdm
    task, schema, head = model.tasks[name], model.schemas[name], model.heads[name]
    kind = task.kind
    penalty = "alpha" if kind == "regression" else "C"
    grid = tuple(sorted(grid or (ALPHA_GRID if kind == "regression" else C_GRID)))
    metric, greater = _selection(model, config, name)
    note = ""
    if _labelled(kind, yv) == 0:
        grid = (1.0,)
        note = f"no labelled validation clip for '{name}': {penalty}=1 (scikit-learn's default), not chosen"
    bar = tqdm(total=len(grid), desc=f"fit {name}", unit=penalty, file=sys.stderr, disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        if kind == "regression":
            path = ridge_path(Z, y, grid)
            bar.update(len(grid))
        else:
            smoothing = float(getattr(task.config if isinstance(task, HasConfig) else None, "label_smoothing", 0.0) or 0.0)
            path = logistic_path(Z, y, head.out.out_features, grid, class_weight=class_weight,
                                 label_smoothing=smoothing if kind == "classification" else 0.0,
                                 multilabel=kind == "multilabel", on_step=lambda: bar.update(1))
    finally:
        bar.close()
    best, chosen, rows = None, 0, []
    for i, (value, (W, b, info)) in enumerate(zip(grid, path)):
        metrics, loss = _scored(task, schema, Zv, yv, W, b, head.squeeze)
        score = loss if metric == "loss" else float(metrics.get(metric, float("nan")))
        rows.append({penalty: value, metric: score, "loss": loss, **info})
        if _better(score, loss, best, greater):
            best, chosen = (score, loss), i
    W, b, info = path[chosen]
    with torch.no_grad():
        head.out.weight.copy_(torch.from_numpy(W.T).to(head.out.weight))
        head.out.bias.copy_(torch.from_numpy(b).to(head.out.bias))
    if not info["converged"]:
        note = (note + "; " if note else "") + f"L-BFGS stopped after {info['iterations']} iterations unconverged"
    return HeadFit(name, kind, penalty, grid[chosen], metric, best[0], rows, info["converged"], note)


# -- the whole model ----------------------------------------------------------------------------------
def balance_weights(model: Any, train: SplitData, config: Any) -> dict[str, np.ndarray | None]:
    """Per task, the weights ``train.balance`` gives its loss, by the loop's rules
    (:func:`zoo.engine.train._set_balance`, whose error it raises too): a classification task's class
    weights ("weights", "auto"), a multi-label task's positive weight per tag ("weights" only); None:
    unweighted. "sampler" draws the first classification task's classes equally often, which in
    expectation weighs its loss by the same class weights."""
    out: dict[str, np.ndarray | None] = {}
    first, tagged = None, False
    for name, task in model.tasks.items():
        if task.kind == "multilabel":
            tagged = True
            out[name] = (augment.tag_weights(train.y_host[name]).astype(np.float64) if config.balance == "weights"
                         else None)
        elif task.kind == "classification":
            on = config.balance in ("weights", "auto") or (config.balance == "sampler" and first is None)
            first = first or name
            out[name] = (augment.class_weights(train.y_host[name], model.schemas[name].out_dim).astype(np.float64)
                         if on else None)
    if config.balance not in ("none", "auto") and first is None and not (config.balance == "weights" and tagged):
        raise RunError(f"train.balance={config.balance} balances classes, but the model has no classification "
                       f"task ({', '.join(model.heads)}); drop the setting (--set train.balance=none)")
    return out


def fit_heads(model: Any, train: SplitData, val: SplitData, config: Any, device: Any, *, progress: bool = True,
              grids: dict[str, tuple[float, ...]] | None = None) -> tuple[list[HeadFit], dict[str, float]]:
    """Set ``model``'s standardisation from ``train`` and fit every head (see the module's docstring).

    ``grids``: a penalty grid per task name instead of the defaults. Returns each task's
    :class:`HeadFit` and one history row (``train.loss``, ``val.loss``, ``val.<task>.<metric>``,
    each task's ``train.<task>.loss``) in the loop's format."""
    import torch
    backbone = model.backbone
    was_training = model.training
    model.eval()
    try:
        raw = pool_split(backbone, train, config.eval_batch_size, progress=progress)
        raw_val = pool_split(backbone, val, config.eval_batch_size, progress=progress)
        if all(p.requires_grad for p in backbone.parameters()):
            backbone.set_standardisation(torch.from_numpy(raw.mean(0)), torch.from_numpy(raw.var(0)))
        weights = balance_weights(model, train, config)

        def standardised(a: np.ndarray) -> list[Any]:
            with torch.inference_mode():
                return [backbone.standardise(torch.from_numpy(a[i: i + _POOL_ROWS]).float().to(device.device))
                        for i in range(0, len(a), _POOL_ROWS)]

        std_train, std_val = standardised(raw), standardised(raw_val)
        fits, row = [], {"epoch": 1.0}
        losses, val_losses = {}, {}
        for name in model.heads:
            Z, Zv = _head_inputs(model, name, std_train), _head_inputs(model, name, std_val)
            done = fit_head(model, name, Z, train.y_host[name], Zv, val.y_host[name], config, device,
                            class_weight=weights.get(name), grid=(grids or {}).get(name), progress=progress)
            fits.append(done)
            head = model.heads[name]
            W, b = head.out.weight.detach().double().cpu().numpy().T, head.out.bias.detach().double().cpu().numpy()
            _, losses[name] = _scored(model.tasks[name], model.schemas[name], Z, train.y_host[name], W, b,
                                      head.squeeze)
            metrics, val_losses[name] = _scored(model.tasks[name], model.schemas[name], Zv, val.y_host[name], W, b,
                                                head.squeeze)
            row.update({f"val.{name}.{k}": float(v) for k, v in metrics.items()})
        weights_of = dict(zip(model.heads, model.fixed_weights.detach().cpu().tolist()))
        row["train.loss"] = float(sum(weights_of[n] * v for n, v in losses.items()))
        row.update({f"train.{n}.loss": float(v) for n, v in losses.items()})
        row["val.loss"] = float(sum(weights_of[n] * v for n, v in val_losses.items()))
    finally:
        model.train(was_training)
    return fits, row


def summary(fits: list[HeadFit]) -> str:
    """The one line ``zoo run`` prints about the fit."""
    return ("fit: closed-form linear heads (L2 logistic by L-BFGS / ridge; penalty chosen on val; deterministic): "
            + ", ".join(f.describe() for f in fits))


def params(fits: list[HeadFit]) -> dict[str, Any]:
    """The fit as tracker params: ``fit.method`` and, per task, the penalty chosen and its metric."""
    out: dict[str, Any] = {"fit.method": "closed-form"}
    for f in fits:
        out[f"fit.{f.task}.{f.penalty}"] = f.value
        out[f"fit.{f.task}.chosen_on"] = f"val.{f.metric}"
    return out


@dataclass
class LinearFit:
    """What :func:`run_fit` did, for the loop's ``FitResult``: the fits, the one history row, the
    monitored key and its value, the seconds it took."""

    fits: list[HeadFit]
    row: dict[str, float]
    monitor: str
    score: float
    seconds: float


def run_fit(model: Any, train: SplitData, val: SplitData, config: Any, device: Any, *, progress: bool = True,
            on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> LinearFit:
    """:func:`fit_heads`, its row checked against ``train.monitor`` and handed to ``on_epoch`` as epoch 1."""
    start = time.perf_counter()
    fits, row = fit_heads(model, train, val, config, device, progress=progress)
    monitor, _ = augment.monitored(model, config.monitor)
    if monitor not in row:
        have = ", ".join(k[4:] for k in row if k.startswith("val."))
        raise RunError(f"train.monitor {config.monitor!r} follows '{monitor}', which validation does not "
                       f"report; valid: {have} (e.g. --set train.monitor=macro_f1)")
    row["seconds"] = time.perf_counter() - start
    if on_epoch is not None:
        on_epoch(1, row)
    return LinearFit(fits, row, monitor, row[monitor], time.perf_counter() - start)
