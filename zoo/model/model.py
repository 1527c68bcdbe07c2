"""The model: ``ZooModel`` joins one backbone and one ``Head`` per task; ``Batch`` is what it is fed."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from ..errors import PluginError, SpecError
from ..protocols import BackboneOutput, LabelSchema
from .layers import length_mask, masked_mean


_VAR_FLOOR = 1e-8
"""Smallest variance under the square root of "meanstd" pooling: a constant channel has std 0,
where the square root's gradient would be infinite."""


class Batch(NamedTuple):
    """A padded batch: ``x[B, F, T]``, ``lengths[B]``, and per task its ``y[B]`` (labels or values)."""

    x: Any
    lengths: Any
    y: Mapping[str, Any]


class Head(nn.Module):
    """Pool a backbone output to ``[B, D]`` (``[B, 2D]`` for "meanstd"), optional hidden layer, then the
    output layer.

    Pooling over a sequence's valid steps: "mean", "max", "last", "attention" (a learned softmax
    weighting), or "meanstd": the mean and the (population) standard deviation of every channel
    side by side, so the head also sees how much each channel varies over the clip (onsets, rhythm,
    changes of harmony), which a mean alone averages away. A backbone that already returns one
    embedding ``[B, D]`` is a one-step sequence: its standard deviation is 0.
    """

    def __init__(self, in_dim: int, out_dim: int, pooling: str, hidden: int, dropout: float, squeeze: bool,
                 bounded: bool = False):
        super().__init__()
        self.pooling = pooling
        self.squeeze = squeeze
        self.bounded = bounded
        self.attn = nn.Linear(in_dim, 1) if pooling == "attention" else None
        if pooling == "meanstd":
            in_dim *= 2
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden > 0:
            layers += [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden if hidden > 0 else in_dim, out_dim)

    def pool(self, out: BackboneOutput):
        h, lengths = out.hidden, out.lengths
        if h.dim() == 2:
            return torch.cat([h, torch.zeros_like(h)], dim=1) if self.pooling == "meanstd" else h
        B, T, _ = h.shape
        if lengths is None:
            lengths = torch.full((B,), T, device=h.device, dtype=torch.long)
        lengths = lengths.to(h.device).clamp(min=1)
        mask = length_mask(lengths, T)  # [B, T]
        if self.pooling == "mean":
            return masked_mean(h, mask)
        if self.pooling == "meanstd":
            mean = masked_mean(h, mask)
            var = masked_mean(torch.square(h - mean.unsqueeze(1)), mask)
            return torch.cat([mean, torch.sqrt(var.clamp_min(_VAR_FLOOR))], dim=1)
        if self.pooling == "max":
            return h.masked_fill(~mask.unsqueeze(-1), torch.finfo(h.dtype).min).amax(1)
        if self.pooling == "last":
            return h[torch.arange(B, device=h.device), lengths - 1]
        scores = self.attn(h).squeeze(-1).masked_fill(~mask, torch.finfo(h.dtype).min)
        w = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (h * w).sum(1)

    def embed(self, out: BackboneOutput):
        """The representation fed to the output layer: ``[B, hidden or D]``."""
        return self.body(self.pool(out))

    def output(self, z):
        """The output layer applied to an embedding ``z[B, hidden or D]`` (what ``embed`` gives)."""
        y = self.out(z)
        if self.bounded:  # targets live in [0, 1]: so do the predictions
            y = torch.sigmoid(y)
        return y.squeeze(-1) if self.squeeze else y

    def forward(self, out: BackboneOutput):
        return self.output(self.embed(out))


class ZooModel(nn.Module):
    """One backbone shared by one head per task.

    ``task_weighting`` is "fixed" (``task_weights``, default 1 each) or "uncertainty": the
    loss of task i is ``exp(-s_i) * L_i + s_i`` with ``s_i`` learned (Kendall et al. style).
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, Any], schemas: Mapping[str, LabelSchema],
                 task_weighting: str = "fixed", task_weights: Mapping[str, float] | None = None):
        super().__init__()
        self.backbone = backbone
        self.tasks = dict(tasks)
        self.schemas = dict(schemas)
        self.heads = nn.ModuleDict({n: t.make_head(backbone.out_dim, schemas[n]) for n, t in tasks.items()})
        if task_weighting not in ("fixed", "uncertainty"):
            raise SpecError(f"task_weighting {task_weighting!r}: use 'fixed' or 'uncertainty'")
        self.task_weighting = task_weighting
        weights = dict(task_weights or {})
        self.register_buffer("fixed_weights", torch.tensor([float(weights.get(n, 1.0)) for n in tasks]))
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)), requires_grad=task_weighting == "uncertainty")

    def _encode(self, x, lengths) -> BackboneOutput:
        """The backbone's output as a ``BackboneOutput``; a backbone may also return a tuple or a tensor."""
        out = self.backbone(x, lengths)
        if not isinstance(out, BackboneOutput):
            out = BackboneOutput(*out) if isinstance(out, tuple) else BackboneOutput(out)
        why = width_error(self.backbone, out.hidden)
        if why:  # the heads were built for out_dim: say so, not "mat1 and mat2 shapes"
            raise PluginError(why)
        return out

    def forward(self, x, lengths) -> dict[str, Any]:
        out = self._encode(x, lengths)
        return {name: head(out) for name, head in self.heads.items()}

    def embed(self, x, lengths, task: str | None = None):
        """The layer before the output layer of ``task`` (default: the first): ``[B, D']``."""
        task = task or next(iter(self.heads))
        return self.heads[task].embed(self._encode(x, lengths))

    def loss(self, outputs: Mapping[str, Any], y: Mapping[str, Any], weights: Mapping[str, Any] | None = None):
        """Total loss and the per-task losses (detached floats are the caller's business).

        ``weights``: per task, the ``weight`` its ``loss`` gets (``train.balance``); a task not in
        it gets none. A task whose ``loss`` takes no ``weight`` is called without it."""
        weights = weights or {}
        per_task = {n: (self.tasks[n].loss(outputs[n], y[n], weight=weights[n]) if weights.get(n) is not None
                        else self.tasks[n].loss(outputs[n], y[n])) for n in self.heads}
        losses = torch.stack([per_task[n] for n in self.heads])
        if self.task_weighting == "uncertainty":
            total = (torch.exp(-self.log_vars) * losses + self.log_vars).sum()
        else:
            total = (self.fixed_weights * losses).sum()
        return total, per_task


def width_error(backbone: Any, hidden: Any) -> str:
    """Why ``hidden``, what ``backbone`` returned, is not ``out_dim`` wide ("" when it is): the one
    wording of ``zoo run`` and :func:`zoo.testing.check_backbone_forward`."""
    width = hidden.shape[-1] if getattr(hidden, "ndim", 0) >= 2 else None
    if width == backbone.out_dim:
        return ""
    return (f"the {getattr(backbone, 'zoo_origin', f'backbone {type(backbone).__name__}')} "
            f"declares out_dim={backbone.out_dim} but its forward returned "
            f"{'width ' + str(width) if width is not None else 'no [B, D] or [B, T, D] tensor'} "
            f"(shape {tuple(getattr(hidden, 'shape', ()))}); its forward and out_dim disagree: fix or "
            f"report the plugin")


def build_model(backbone: Any, tasks: Mapping[str, Any], schemas: Mapping[str, LabelSchema], **kwargs: Any) -> ZooModel:
    """A ``ZooModel`` (torch module) joining ``backbone`` and one head per task."""
    return ZooModel(backbone, tasks, schemas, **kwargs)
