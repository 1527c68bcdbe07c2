"""Transfer learning: start a composition's backbone from a trained model's (lab step 9).

The source is a packaged model folder (see :mod:`zoo.engine.package`). Its backbone settings are
adopted (the weights only fit the same architecture), and so are its feature settings unless given
again (the backbone learned from that input); its backbone weights are copied and the heads start
fresh. ``freeze``: "none" fine-tunes everything, "backbone" trains only the heads, an integer N
keeps the first N blocks of the backbone fixed. A backbone with its own ``freeze`` setting (the
AST: patch and position embeddings plus its first N transformer blocks) decides what its blocks
are; for any other backbone they are found by :func:`zoo.engine.freezing.backbone_blocks`.
Frozen batch norms keep the source's running statistics. Normalisation statistics are refitted
on the new training split.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import with_former_defaults
from ..errors import ConfigError, SpecError
from ..fsio import read_torch
from ..spec import Composition
from ..tracking import NOTE_TAG
from .freezing import freeze, freeze_blocks
from .package import INIT_ONLY_SETTINGS, WEIGHTS_FILE, read_meta


@dataclass(frozen=True)
class TransferSource:
    """A trained model to start from: its folder, its ``zoo_model.json`` and what to freeze."""

    folder: Path
    meta: Mapping[str, Any]
    freeze: str | int = "none"
    label: str = ""
    """How the user named it (recipe, run id or folder), for logs."""

    @property
    def spec(self) -> str:
        return self.meta["spec"]

    @property
    def source_run(self) -> str:
        """The MLflow run that trained the source ("" when it was not tracked)."""
        return str(self.meta.get("run_id") or "")

    def tags(self) -> dict[str, str]:
        """Tags linking a run to its source; ``NOTE_TAG`` is the run's description, shown with it."""
        run = f" (run {self.source_run})" if self.source_run else ""
        note = (f"Transfer learning: the backbone starts from {self.label}{run}, a trained {self.spec} model; "
                f"freeze {self.freeze}.")
        return {"zoo.transfer.from": self.label, "zoo.transfer.source_run": self.source_run, NOTE_TAG: note}


def parse_freeze(value: Any) -> str | int:
    """"none", "backbone" or a non-negative integer (from YAML, the CLI or Python)."""
    if isinstance(value, bool):
        raise ConfigError(f"transfer freeze {value!r}: use none, backbone or a number of blocks")
    if value is None:
        return "none"
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"transfer freeze {value}: a number of blocks must be 0 or more")
        return value
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    if text in ("none", "backbone"):
        return text
    raise ConfigError(f"transfer freeze {value!r}: use none, backbone or a number of blocks (e.g. 2)")


def source_from_folder(folder: Path, freeze: Any = "none", label: str = "") -> TransferSource:
    folder = Path(folder)
    meta = read_meta(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise ConfigError(f"transfer source {folder} has no {WEIGHTS_FILE}; re-run the source training")
    return TransferSource(folder, meta, parse_freeze(freeze), label or str(folder))


def adopt_settings(source: TransferSource, comp: Composition, settings: Mapping[str, Mapping[str, Any]] | None,
                   backbone_config: type) -> dict[str, dict[str, Any]]:
    """``settings`` with the source's backbone config (and an integer ``freeze``) filled in.

    The target must use the source's backbone and features: the copied weights expect them.
    """
    src = source.meta["composition"]
    if src["backbone"] != comp.backbone:
        raise SpecError(
            f"cannot transfer from {source.label} ({source.spec}): its backbone is '{src['backbone']}', "
            f"the target {comp} uses '{comp.backbone}'; use the same backbone"
        )
    if list(src["features"]) != list(comp.features):
        raise SpecError(
            f"cannot transfer from {source.label} ({source.spec}): it was trained on features "
            f"{'+'.join(src['features'])}, the target {comp} uses {'+'.join(comp.features)}; use the same features"
        )
    out = {k: dict(v) for k, v in (settings or {}).items()}
    given = {**out.pop("backbone", {}), **out.pop(comp.backbone, {})}
    recorded = {k: v for k, v in with_former_defaults(backbone_config, source.meta["configs"]["backbone"]).items()
                if k not in INIT_ONLY_SETTINGS}
    clash = {k: v for k, v in given.items() if k in recorded and str(v) != str(recorded[k]) and k != "freeze"}
    if clash:
        key = next(iter(clash))
        raise ConfigError(
            f"backbone setting {key}={clash[key]} differs from the transfer source's {key}={recorded[key]} "
            f"({source.label}); its weights only fit its own architecture: drop --set backbone.{key}"
        )
    merged = {**recorded, **given}
    if isinstance(source.freeze, int) and source.freeze > 0 and own_freeze(backbone_config):
        merged["freeze"] = source.freeze
    out["backbone"] = merged
    # The source's feature settings, under anything given for the features now (which wins).
    for name, config in (source.meta["configs"].get("feature") or {}).items():
        out[name] = {**config, **out.get("feature", {}), **out.get(name, {})}
    return out


def own_freeze(backbone_config: type | None) -> bool:
    """Whether the backbone freezes its first N blocks itself (a ``freeze`` setting)."""
    return backbone_config is not None and "freeze" in {f.name for f in dataclasses.fields(backbone_config)}


def check_input(source: TransferSource, rate: str, n_bins: int, comp: Composition) -> None:
    """The target's stacked input must have the source's rate and number of bins."""
    want_rate, want_bins = source.meta.get("rate"), int(source.meta.get("n_bins", n_bins))
    if (want_rate, want_bins) != (rate, n_bins):
        raise SpecError(
            f"cannot transfer from {source.label} ({source.spec}): the target {comp} gets {rate}-rate input of "
            f"{n_bins} input bins, the source's backbone learned from {want_rate}-rate input of {want_bins} bins; "
            f"drop the feature settings that change the bins (--set FEATURE.KEY=...) so the source's apply"
        )


def load_backbone_weights(model: Any, source: TransferSource, backbone_config: type | None = None) -> int:
    """Copy the source's backbone weights into ``model.backbone``; freeze all of it for "backbone",
    its first N blocks for N (unless the backbone's ``backbone_config`` has its own ``freeze``).

    Returns the number of tensors copied.
    """
    state = read_torch(source.folder / WEIGHTS_FILE, f"cannot transfer from {source.label}: the weights file",
                       "the model folder is damaged or incomplete: re-run its training or copy the folder again",
                       ConfigError)
    if not isinstance(state, Mapping):
        raise ConfigError(f"cannot transfer from {source.label}: {source.folder / WEIGHTS_FILE} holds "
                          f"{type(state).__name__}, not a mapping of tensor names to tensors; re-run its training")
    prefix = "backbone."
    backbone_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        model.backbone.load_state_dict(backbone_state)
    except RuntimeError as exc:
        raise ConfigError(
            f"the backbone weights of {source.label} do not fit the new model ({exc}); the source and target "
            f"must have the same backbone settings and feature bins"
        ) from exc
    if source.freeze == "backbone":
        freeze(list(model.backbone.parameters()), [model.backbone])
    elif isinstance(source.freeze, int) and source.freeze > 0 and not own_freeze(backbone_config):
        freeze_blocks(model.backbone, source.freeze, source.meta["composition"]["backbone"])
    return len(backbone_state)
