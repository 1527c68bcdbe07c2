"""Built-in tasks: genre classification, emotion regression (valence, energy, danceability) and
multi-label tagging (``tags``).

Registered through the ``music_zoo.tasks`` entry points of the ``music-zoo`` distribution, like a
third party's. A task owns its head (pooling, optional hidden layer, output layer), its loss and
its metrics; the engine owns everything else.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .protocols import ComponentSpec, LabelSchema

Pooling = Literal["mean", "max", "last", "attention", "meanstd"]


def _head_class():
    # The class lives with the model (it needs torch); importing it here on first use keeps
    # ``zoo.tasks`` torch-free for ``zoo list``.
    from .model.model import Head
    return Head


@dataclass(frozen=True)
class ClassificationConfig:
    """``pooling`` of sequence outputs, ``hidden`` units before the output (0: none), ``dropout``,
    ``label_smoothing`` of the cross-entropy."""

    pooling: Pooling = "mean"
    hidden: int = 0
    dropout: float = 0.2
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class RegressionConfig:
    """``loss``: "mse" (the lab's), "ccc" (1 - concordance correlation: rewards following the
    targets' ups and downs, not only their mean) or "mse+ccc"; ``bounded``: a sigmoid keeps the
    predictions in [0, 1], the range of the emotion targets (false: an unbounded linear output);
    other fields as for classification."""

    pooling: Pooling = "mean"
    hidden: int = 0
    dropout: float = 0.2
    loss: Literal["mse", "ccc", "mse+ccc"] = "mse+ccc"
    bounded: bool = True


class Classification:
    """Single-label classification of a clip's ``label`` (e.g. its genre); reports accuracy and F1."""

    kind = "classification"
    primary_metric = "accuracy"
    greater_is_better = True
    higher_is_better = {"accuracy": True, "macro_f1": True, "weighted_f1": True}

    def __init__(self, name: str, config: ClassificationConfig):
        self.name, self.config, self.target = name, config, "label"

    def schema(self, classes: tuple[str, ...]) -> LabelSchema:
        return LabelSchema(self.name, "classification", classes=tuple(classes))

    def make_head(self, in_dim: int, schema: LabelSchema):
        c = self.config
        return _head_class()(in_dim, schema.out_dim, c.pooling, c.hidden, c.dropout, squeeze=False)

    def loss(self, output, y, weight=None):
        """``weight``: per-class weights ``[C]`` (``train.balance``); None: every clip counts the same."""
        import torch.nn.functional as F
        # Sum over the labelled clips / their count: the mean, except that a batch with no label
        # (multi-task data labelled in part) gives 0 instead of 0/0 = NaN, without a host sync.
        # Class weights (train.balance) weigh each clip's term, and the sum is still divided by the
        # count, not by the weights' sum: the weights average 1 over the training clips, and every
        # rank of a DDP run then divides by what the others do (equal shards), so N processes
        # train the 1-process model; a per-batch weight sum would differ from rank to rank.
        total = F.cross_entropy(output.float(), y, weight=weight, ignore_index=-1,
                                label_smoothing=self.config.label_smoothing, reduction="sum")
        return total / (y >= 0).sum().clamp(min=1)

    def predict(self, output) -> np.ndarray:
        import torch
        return torch.softmax(output.float(), dim=-1).detach().cpu().numpy()

    def metrics(self, pred: np.ndarray, y: np.ndarray, schema: LabelSchema) -> dict[str, float]:
        from sklearn.metrics import f1_score
        keep = y >= 0
        y, hard = y[keep], pred[keep].argmax(-1)
        if len(y) == 0:
            return {}
        labels = list(range(len(schema.classes)))
        return {
            "accuracy": float((hard == y).mean()),
            "macro_f1": float(f1_score(y, hard, labels=labels, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(y, hard, labels=labels, average="weighted", zero_division=0)),
        }


def concordance(pred, y):
    """Lin's concordance correlation coefficient of two 1-D tensors (differentiable)."""
    pm, ym = pred.mean(), y.mean()
    pv, yv = pred.var(unbiased=False), y.var(unbiased=False)
    cov = ((pred - pm) * (y - ym)).mean()
    return 2 * cov / (pv + yv + (pm - ym) ** 2 + 1e-8)


class Regression:
    """Regression of one continuous target in [0, 1]; reports MAE, MSE, Spearman, Pearson, R², CCC."""

    kind = "regression"
    primary_metric = "spearman"
    greater_is_better = True
    higher_is_better = {"mae": False, "mse": False, "r2": True, "spearman": True, "pearson": True, "ccc": True}

    def __init__(self, name: str, target: str, config: RegressionConfig):
        self.name, self.target, self.config = name, target, config

    def schema(self, classes: tuple[str, ...]) -> LabelSchema:
        return LabelSchema(self.name, "regression", target=self.target)

    def make_head(self, in_dim: int, schema: LabelSchema):
        c = self.config
        return _head_class()(in_dim, 1, c.pooling, c.hidden, c.dropout, squeeze=True, bounded=c.bounded)

    def loss(self, output, y, weight=None):
        """``weight`` is ignored: ``train.balance`` weighs classes and tags, not values."""
        import torch
        keep = ~torch.isnan(y)
        out, y = output.float()[keep], y[keep]
        if out.numel() == 0:
            return output.sum() * 0.0
        mse = torch.mean((out - y) ** 2)
        if self.config.loss == "mse" or out.numel() < 2:
            return mse
        ccc_loss = 1.0 - concordance(out, y)
        return ccc_loss if self.config.loss == "ccc" else mse + ccc_loss

    def predict(self, output) -> np.ndarray:
        return output.detach().float().cpu().numpy()

    def metrics(self, pred: np.ndarray, y: np.ndarray, schema: LabelSchema) -> dict[str, float]:
        from scipy.stats import pearsonr, spearmanr
        keep = ~np.isnan(y)
        p, y = pred[keep].astype(np.float64), y[keep].astype(np.float64)
        if len(y) == 0:
            return {}
        out = {"mae": float(np.mean(np.abs(p - y))), "mse": float(np.mean((p - y) ** 2))}
        var = float(np.var(y))
        out["r2"] = float(1 - out["mse"] / var) if var > 0 else float("nan")
        constant = np.ptp(p) == 0 or np.ptp(y) == 0
        out["spearman"] = 0.0 if constant else float(spearmanr(p, y).statistic)
        out["pearson"] = 0.0 if constant else float(pearsonr(p, y).statistic)
        pm, ym = p.mean(), y.mean()
        out["ccc"] = float(2 * np.mean((p - pm) * (y - ym)) / (p.var() + y.var() + (pm - ym) ** 2 + 1e-12))
        return out


def _regression(target: str, what: str) -> ComponentSpec:
    return ComponentSpec(
        kind="task", name=target, config=RegressionConfig,
        build=lambda config: Regression(target, target, config),
        summary=f"regression of {what} in [0, 1] (MAE, MSE, Spearman; MSE and/or concordance loss)",
    )


genre = ComponentSpec(
    kind="task", name="genre", config=ClassificationConfig,
    build=lambda config: Classification("genre", config),
    summary="genre classification (accuracy, per-class precision/recall/F1, confusion matrix)",
)
valence = _regression("valence", "valence (musical positiveness)")
energy = _regression("energy", "energy (intensity and activity)")
danceability = _regression("danceability", "danceability (beat strength and regularity)")


# -- multi-label tagging -----------------------------------------------------------------------
TAG_PREFIX = "tag:"
"""A data set marks a target column as a tag by this prefix (a manifest header ``tag:calm``);
the ``tags`` task reads every such column unless its ``columns`` name others."""


@dataclass(frozen=True)
class TagsConfig:
    """``columns``: the data set's numeric columns that are the tags, in output order
    (``--set tags.columns=calm,sad``; a name matches the column or ``tag:NAME``); empty: every
    column whose header starts with ``tag:``. ``threshold``: a tag is on for a clip where its value
    is >= this. The default 0.5 suits 0/1 columns (any threshold in (0, 1] reads them the same)
    and means "a majority ticked it" for shares of listeners; for shares of listeners who could
    tick a few of many tags (Emotify), a lower one keeps rare tags learnable (docs/data.md).
    Other fields as for classification."""

    columns: tuple[str, ...] = ()
    threshold: float = 0.5
    pooling: Pooling = "mean"
    hidden: int = 0
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold {self.threshold}: give a finite number, e.g. --set tags.threshold=0.3")
        names = [c.strip().lower() for c in self.columns]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"columns {','.join(self.columns)}: give each tag column once, e.g. "
                             f"--set tags.columns=calm,sad")


def tag_name(column: str) -> str:
    """The tag a column holds: its name without the ``tag:`` prefix."""
    return column[len(TAG_PREFIX):] if column.startswith(TAG_PREFIX) else column


def metric_key(tag: str) -> str:
    """``tag`` as a part of a metric name: characters a tracking store refuses become ``_``."""
    return re.sub(r"[^\w\-. /]", "_", tag)


def binary_auc(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(ROC-AUC, average precision)`` of ``scores[N]`` for the binary ``truth[N]`` (both classes present)."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    return float(roc_auc_score(truth, scores)), float(average_precision_score(truth, scores))


class Tagging:
    """Multi-label tagging: any number of tags per clip, each on or off (emotions ticked by
    listeners, MagnaTagATune's tags). One sigmoid output per tag, binary cross-entropy; reports
    ROC-AUC and PR-AUC (average precision) per tag and their means over the tags, as the tagging
    literature does, and micro F1 at probability 0.5.

    The primary metric is the macro PR-AUC: a tag's ROC-AUC is 0.5 by chance however rare the tag
    is, and stays high for a model that ranks the many negatives of a rare tag well and its few
    positives poorly; PR-AUC follows the positives (its chance level is the tag's share), which is
    what a tag is used for (finding the clips that have it).
    """

    kind = "multilabel"
    primary_metric = "pr_auc"
    greater_is_better = True
    higher_is_better = {"roc_auc": True, "pr_auc": True, "micro_f1": True}

    def __init__(self, name: str, config: TagsConfig):
        self.name, self.config, self.target = name, config, "tags"
        self.columns = tuple(c.strip().lower() for c in config.columns)
        self.threshold = float(config.threshold)

    def resolve(self, available, where: str) -> tuple[str, ...]:
        """The columns of ``available`` (a data set's numeric target names) this task reads, in
        output order; a DataError naming ``where``, the column and the fix when one is missing."""
        from .errors import DataError, suggest
        available = list(available)
        have = ", ".join(available) or "(none)"
        if not self.columns:
            found = tuple(c for c in available if c.startswith(TAG_PREFIX))
            if not found:
                raise DataError(
                    f"task '{self.name}' reads the tag columns of the data, but {where} has none (numeric "
                    f"columns: {have}); name them with --set {self.name}.columns=COL1,COL2,... or prefix their "
                    f"headers with '{TAG_PREFIX}' in the manifest ({TAG_PREFIX}calm)")
            return found
        out = []
        for col in self.columns:
            match = [c for c in (col, TAG_PREFIX + col) if c in available]
            if not match:
                raise DataError(
                    f"task '{self.name}': tag column '{col}' is not in {where} (numeric columns: {have})"
                    f"{suggest(col, [tag_name(c) for c in available])}; fix --set {self.name}.columns=... "
                    f"or the manifest's header")
            out.append(match[0])
        names = [tag_name(c) for c in out]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DataError(f"task '{self.name}': columns {', '.join(out)} give the tag(s) {', '.join(twice)} twice; "
                            f"name each tag once in --set {self.name}.columns=...")
        return tuple(out)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Values ``[N, K]`` (NaN: missing) -> float32 ``[N, K]``: 1 where >= threshold, else 0, NaN kept."""
        values = np.asarray(values, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            on = (values >= self.threshold).astype(np.float32)
        return np.where(np.isnan(values), np.float32(np.nan), on).astype(np.float32)

    def schema(self, classes: tuple[str, ...]) -> LabelSchema:
        """``classes``: the tag columns (:meth:`resolve`), or the tag names a packaged model recorded."""
        return LabelSchema(self.name, "multilabel", classes=tuple(tag_name(c) for c in classes))

    def make_head(self, in_dim: int, schema: LabelSchema):
        c = self.config
        return _head_class()(in_dim, schema.out_dim, c.pooling, c.hidden, c.dropout, squeeze=False)

    def loss(self, output, y, weight=None):
        """``weight``: per-tag weights ``[K]`` of the positive term (``train.balance=weights``);
        None: plain binary cross-entropy."""
        import torch
        import torch.nn.functional as F
        # Sum over the known (clip, tag) pairs / their count: a batch with none gives 0, not NaN.
        known = ~torch.isnan(y)
        target = torch.where(known, y, torch.zeros_like(y))
        each = F.binary_cross_entropy_with_logits(output.float(), target.float(), pos_weight=weight,
                                                  reduction="none")
        return (each * known).sum() / known.sum().clamp(min=1)

    def predict(self, output) -> np.ndarray:
        import torch
        return torch.sigmoid(output.float()).detach().cpu().numpy()

    def metrics(self, pred: np.ndarray, y: np.ndarray, schema: LabelSchema) -> dict[str, float]:
        """Per tag ``TAG.roc_auc`` and ``TAG.pr_auc`` over the clips that have its value, for each tag
        with both classes there (one that has one class only cannot be ranked and is left out);
        ``roc_auc`` and ``pr_auc``: their means over those tags (NaN when there is none); ``micro_f1``
        of the decisions at probability 0.5 over every known (clip, tag)."""
        from sklearn.metrics import f1_score
        pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
        known = ~np.isnan(y)
        if not known.any():
            return {}
        out: dict[str, float] = {}
        rocs, aps = [], []
        for k, tag in enumerate(schema.classes):
            keep = known[:, k]
            truth = y[keep, k] >= 0.5
            if truth.all() or not truth.any():
                continue
            roc, ap = binary_auc(pred[keep, k], truth)
            key = metric_key(tag)
            out[f"{key}.roc_auc"], out[f"{key}.pr_auc"] = roc, ap
            rocs.append(roc)
            aps.append(ap)
        summary = {"roc_auc": float(np.mean(rocs)) if rocs else float("nan"),
                   "pr_auc": float(np.mean(aps)) if aps else float("nan"),
                   "micro_f1": float(f1_score(y[known] >= 0.5, pred[known] >= 0.5, zero_division=0))}
        return {**summary, **out}


tags = ComponentSpec(
    kind="task", name="tags", config=TagsConfig,
    build=lambda config: Tagging("tags", config),
    summary="multi-label tagging of the data set's tag columns (ROC-AUC and PR-AUC per tag and their means)",
)
