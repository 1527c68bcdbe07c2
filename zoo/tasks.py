"""Built-in tasks: genre classification and emotion regression (valence, energy, danceability).

Registered through the ``music_zoo.tasks`` entry points of the ``music-zoo`` distribution, like a
third party's. A task owns its head (pooling, optional hidden layer, output layer), its loss and
its metrics; the engine owns everything else.
"""
from __future__ import annotations

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

    def __init__(self, name: str, config: ClassificationConfig):
        self.name, self.config, self.target = name, config, "label"
        # Per-class loss weights [C] on the model's device, set by the engine for the length of a
        # training run (train.balance=weights); None: every clip counts the same.
        self.class_weight = None

    def schema(self, classes: tuple[str, ...]) -> LabelSchema:
        return LabelSchema(self.name, "classification", classes=tuple(classes))

    def make_head(self, in_dim: int, schema: LabelSchema):
        c = self.config
        return _head_class()(in_dim, schema.out_dim, c.pooling, c.hidden, c.dropout, squeeze=False)

    def loss(self, output, y):
        import torch.nn.functional as F
        # Sum over the labelled clips / their count: the mean, except that a batch with no label
        # (multi-task data labelled in part) gives 0 instead of 0/0 = NaN, without a host sync.
        # Class weights (train.balance) weigh each clip's term, and the sum is still divided by the
        # count, not by the weights' sum: the weights average 1 over the training clips, and every
        # rank of a DDP run then divides by what the others do (equal shards), so N processes
        # train the 1-process model; a per-batch weight sum would differ from rank to rank.
        total = F.cross_entropy(output.float(), y, weight=self.class_weight, ignore_index=-1,
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

    def __init__(self, name: str, target: str, config: RegressionConfig):
        self.name, self.target, self.config = name, target, config

    def schema(self, classes: tuple[str, ...]) -> LabelSchema:
        return LabelSchema(self.name, "regression", target=self.target)

    def make_head(self, in_dim: int, schema: LabelSchema):
        c = self.config
        return _head_class()(in_dim, 1, c.pooling, c.hidden, c.dropout, squeeze=True, bounded=c.bounded)

    def loss(self, output, y):
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
