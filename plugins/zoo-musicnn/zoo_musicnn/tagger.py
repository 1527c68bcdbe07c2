"""The pretrained tagger as a packaged zoo model: ``zoo-musicnn-tagger [FOLDER]``, then ``zoo predict FOLDER song.mp3`` shows its 50 tags.

The package is an ordinary zoo model folder (``zoo_model.json`` + ``weights.pt``) of
``musicnn+musicnn-mel:tags``: the pretrained network up to its penultimate layer as the backbone,
and the zoo's multi-label ``tags`` head holding musicnn's own output layer (50 sigmoid outputs,
named with the checkpoint's tags). Nothing is trained. ``zoo predict`` cuts a file into windows of
187 frames (2.99 s, the model's input; ``train.crop_frames`` says so), half-overlapping, and
averages the windows' tag probabilities; each window's probabilities are musicnn's taggram row
for that window. ``zoo embed`` gives the penultimate layer averaged over windows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .configs import PATCH_FRAMES
from .weights import MODELS, model_info, pretrained_state, tag_names

SPEC = "musicnn+musicnn-mel:tags"


def default_folder(model: str) -> Path:
    from zoo.workspace import Workspace

    return Workspace.from_env().home / "models" / f"musicnn-tagger-{model}"


def package_tagger(folder: Path | str | None = None, model: str = "MSD_musicnn", registry: Any = None) -> Path:
    """Write the packaged tagger of checkpoint ``model`` into ``folder`` (default ``ZOO_HOME/models/musicnn-tagger-MODEL``)."""
    import numpy as np
    import torch

    from zoo.engine.batches import Normaliser
    from zoo.engine.package import save_model
    from zoo.engine.trainconfig import TrainConfig
    from zoo.model.building import build_components
    from zoo.model.model import build_model
    from zoo.spec import parse_spec
    from zoo.workspace import Workspace

    model_info(model, "zoo-musicnn-tagger --model")
    registry = registry or Workspace.from_env().registry()
    folder = Path(folder) if folder else default_folder(model)
    built = build_components(parse_spec(SPEC, registry), registry, {"backbone": {"model": model}})
    tags = tag_names(model)
    tasks = built.tasks
    zoo_model = build_model(built.make_backbone(registry), tasks, {"tags": tasks["tags"].schema(tags)})
    state = pretrained_state(model)
    head: Any = zoo_model.heads["tags"]
    with torch.no_grad():
        head.out.weight.copy_(state["output.weight"])
        head.out.bias.copy_(state["output.bias"])
    zoo_model.eval()
    n_bins = built.n_bins
    meta = {"classes": [], "targets": [], "lengths": {"median": PATCH_FRAMES, "min": PATCH_FRAMES, "max": PATCH_FRAMES},
            "feature_slices": {"musicnn-mel": [0, n_bins]}, "fingerprint": f"musicnn:{model}",
            "description": f"not trained here: musicnn's {model} checkpoint, trained on {MODELS[model].dataset}",
            "counts": {"train": 0, "val": 0, "test": 0}}
    norm = Normaliser(np.zeros(n_bins, dtype=np.float32), np.ones(n_bins, dtype=np.float32))
    return save_model(folder, zoo_model, built, meta, norm, TrainConfig(crop_frames=PATCH_FRAMES), registry=registry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo-musicnn-tagger",
        description="Package a pretrained musicnn tagger as a zoo model folder; then `zoo predict FOLDER song.mp3`.")
    parser.add_argument("folder", nargs="?", help="where to write it (default: ZOO_HOME/models/musicnn-tagger-MODEL)")
    parser.add_argument("--model", default="MSD_musicnn", choices=list(MODELS),
                        help="the checkpoint: MSD_musicnn (Million Song Dataset tags, default), MTT_musicnn "
                             "(MagnaTagATune), MSD_vgg, MTT_vgg")
    args = parser.parse_args(argv)
    from zoo.errors import ZooError

    try:
        folder = package_tagger(args.folder, args.model)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"musicnn {args.model} tagger: {folder}\nthen:   zoo predict {folder} song.mp3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
