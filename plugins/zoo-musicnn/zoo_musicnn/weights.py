"""The pretrained musicnn weights: found in the installed ``musicnn`` wheel, converted once to safetensors in the zoo's cache.

The ``musicnn`` distribution (``pip install --no-deps musicnn``: its own requirements pin numpy
< 1.17 and TensorFlow, neither of which the zoo needs) ships four TensorFlow 1 checkpoints inside
its package folder: ``MSD_musicnn``, ``MTT_musicnn``, ``MSD_vgg`` and ``MTT_vgg``. They are found
with ``importlib`` without importing ``musicnn`` (its modules import TensorFlow), read with
:mod:`zoo_musicnn.tfbundle`, mapped onto the torch modules of :mod:`zoo_musicnn.network` and saved
as ``ZOO_HOME/cache/musicnn/MODEL-SHA16.safetensors``, keyed by the sha256 of the checkpoint's
files; every later build reads that file (no TensorFlow, ever).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, suggest

INSTALL = "pip install --no-deps musicnn==0.1.0"
"""The fix whenever the wheel is missing: ``--no-deps`` because its pins (numpy < 1.17, TensorFlow) are not needed."""


@dataclass(frozen=True)
class ModelInfo:
    """One checkpoint of the wheel: its network and the tag list it was trained on."""

    name: str
    arch: str  # "musicnn" or "vgg"
    labels: str  # the name of the list in musicnn/configuration.py
    dataset: str


MODELS = {
    "MSD_musicnn": ModelInfo("MSD_musicnn", "musicnn", "MSD_LABELS", "the Million Song Dataset (last.fm tags)"),
    "MTT_musicnn": ModelInfo("MTT_musicnn", "musicnn", "MTT_LABELS", "MagnaTagATune"),
    "MSD_vgg": ModelInfo("MSD_vgg", "vgg", "MSD_LABELS", "the Million Song Dataset (last.fm tags)"),
    "MTT_vgg": ModelInfo("MTT_vgg", "vgg", "MTT_LABELS", "MagnaTagATune"),
}


def model_info(name: str, where: str) -> ModelInfo:
    if name not in MODELS:
        raise ConfigError(f"{where} setting 'model': {name!r} is not one of musicnn's checkpoints; give one of "
                          f"{', '.join(MODELS)}{suggest(name, list(MODELS))}")
    return MODELS[name]


def package_dir() -> Path:
    """The installed ``musicnn`` package folder (found, not imported); ConfigError naming the install command if absent."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the musicnn weights come from the 'musicnn' package, which is not installed; install it "
                          f"with `{INSTALL}` (the wheel holds the checkpoints; TensorFlow is not needed)")
    return Path(next(iter(spec.submodule_search_locations)))


def checkpoint_prefix(name: str) -> str:
    """``.../musicnn/MODEL/`` with its ``.index`` and ``.data-00000-of-00001`` files (the prefix is the folder itself)."""
    folder = package_dir() / name
    if not (folder / ".index").is_file():
        raise ConfigError(f"the installed musicnn package has no checkpoint '{name}' ({folder / '.index'} is missing); "
                          f"reinstall it with `{INSTALL}`")
    return f"{folder}/"


@functools.lru_cache(maxsize=None)
def tag_names(name: str) -> tuple[str, ...]:
    """The model's 50 tags, in output order, read from the installed ``musicnn/configuration.py`` (parsed, not imported)."""
    info = model_info(name, "musicnn")
    path = package_dir() / "configuration.py"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == info.labels for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise ConfigError(f"{path} has no {info.labels}: this musicnn version is not the one the zoo reads; `{INSTALL}`")


def checkpoint_sha256(name: str) -> str:
    """sha256 over the checkpoint's ``.index`` and data files: what the converted weights (and the embedding cache) are keyed by."""
    folder = Path(checkpoint_prefix(name))
    parts = sorted(p for p in folder.iterdir() if p.name == ".index" or p.name.startswith(".data-"))
    return _sha256(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts))


@functools.lru_cache(maxsize=16)
def _sha256(parts: tuple[tuple[str, int, int], ...]) -> str:
    # Keyed by path, size and mtime: hashed once per process unless the files change.
    h = hashlib.sha256()
    for path, _, _ in parts:
        h.update(Path(path).name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def build_network(name: str, tagger: bool = True) -> Any:
    """The torch module of checkpoint ``name`` (random weights)."""
    from .network import VGG, Musicnn

    return Musicnn(tagger=tagger) if model_info(name, "musicnn").arch == "musicnn" else VGG(tagger=tagger)


def cache_dir() -> Path:
    from zoo.workspace import Workspace

    return Workspace.from_env().cache_dir / "musicnn"


def converted_path(name: str) -> Path:
    """Where the safetensors of checkpoint ``name`` live (made by :func:`pretrained_state` if missing)."""
    return cache_dir() / f"{name}-{checkpoint_sha256(name)[:16]}.safetensors"


def convert(name: str, path: Path) -> Path:
    """Read checkpoint ``name`` with the zoo's reader, map it onto the torch module, write ``path`` atomically."""
    import torch
    from safetensors.torch import save

    from zoo.fsio import atomic_file

    from .network import tf_to_torch
    from .tfbundle import read_tensors

    net = build_network(name, tagger=True)
    names = net.tf_names()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    tensors = read_tensors(checkpoint_prefix(name), sorted(set(names.values())))
    state = {k: torch.from_numpy(tf_to_torch(k, tensors[tf], shapes[k])) for k, tf in names.items()}
    with atomic_file(path, f"the converted musicnn weights ({name})") as f:
        f.write(save(state, metadata={"source": f"musicnn {name}", "checkpoint_sha256": checkpoint_sha256(name)}))
    return path


def pretrained_state(name: str) -> dict[str, Any]:
    """The torch state dict of checkpoint ``name`` (tensor name -> Tensor), converted on first use."""
    from safetensors.torch import load_file

    path = converted_path(name)
    if not path.is_file():
        convert(name, path)
    return load_file(str(path))


def load_pretrained(net: Any, name: str) -> None:
    """Fill ``net`` (from :func:`build_network`) with checkpoint ``name``'s weights; every parameter must be covered."""
    state = pretrained_state(name)
    own = net.state_dict()
    wanted = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in wanted and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConfigError(f"the converted musicnn weights of {name} lack {missing[:3]}: delete {converted_path(name)} "
                          f"to convert them again")
    net.load_state_dict(wanted, strict=False)
