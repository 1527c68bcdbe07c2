"""Start an AST from an ImageNet ViT state dict (timm format) kept in a local file.

Nothing is downloaded: the user points ``--set backbone.weights=PATH`` at a file they have.
What changes on the way in:

- ``patch_embed.proj.weight [D, 3, k, k]`` -> ``[D, 1, k, k]`` by summing the RGB kernels: a
  grey image (R = G = B = x) gives the same response as the colour kernel, so the pretrained
  filters keep their scale on a one-channel spectrogram.
- ``pos_embed [1, 1 + g*g, D]``: the CLS entry goes to ``cls_pos_embed``; the square ``g x g``
  grid is resized bilinearly to the AST grid ``[n_freq, n_patches(max_frames)]``.
- ``head.*`` (the ImageNet classifier) is left out on purpose: the zoo's task heads replace it.

Every other tensor must match by name and shape; anything missing or extra is an error that
says what to change, never skipped.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from zoo.errors import ConfigError

_WHERE = "backbone 'ast' setting weights"
_CLASSIFIER = ("head.", "head_drop.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pt``/``.pth``/``.bin`` (torch) or ``.safetensors`` file.

    A checkpoint that wraps the weights under ``state_dict`` or ``model`` is unwrapped, and a
    ``module.`` prefix (saved from DataParallel) is removed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{_WHERE}: file '{path}' not found; give the path of a local timm ViT state dict "
            f"(.pt, .pth or .safetensors) or leave weights empty to train from scratch"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoding failure means the file is not a usable checkpoint
        raise ConfigError(
            f"{_WHERE}: cannot read '{path}' ({type(exc).__name__}: {exc}); it must be a torch "
            f"state dict saved with torch.save(model.state_dict(), ...) or a .safetensors file"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{_WHERE}: '{path}' holds {type(obj).__name__}, not a mapping of tensor names to tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def adapt_vit_state(state: Mapping[str, torch.Tensor], model: Any, source: str) -> dict[str, torch.Tensor]:
    """Map an ImageNet ViT state dict onto ``model`` (an ASTBackbone): keys and shapes of the AST."""
    D = model.config.embed_dim
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise ConfigError(f"{_WHERE}: '{source}' has no {', '.join(missing)}; it does not look like a timm ViT state dict")
    width = state["cls_token"].shape[-1]
    if width != D:
        raise ConfigError(f"{_WHERE}: '{source}' is {width} wide but embed_dim={D}; set --set backbone.embed_dim={width}")
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth != model.config.depth:
        raise ConfigError(f"{_WHERE}: '{source}' has {depth} blocks but depth={model.config.depth}; set --set backbone.depth={depth}")
    kernel = state["patch_embed.proj.weight"]
    k = model.config.patch_size
    if kernel.dim() != 4 or tuple(kernel.shape[-2:]) != (k, k):
        raise ConfigError(
            f"{_WHERE}: '{source}' has {tuple(kernel.shape[-2:])} patches but patch_size={k}; "
            f"set --set backbone.patch_size={kernel.shape[-1]}"
        )
    pos = state["pos_embed"]
    grid = pos.shape[1] - 1
    side = math.isqrt(grid)
    if pos.dim() != 3 or side * side != grid:
        raise ConfigError(
            f"{_WHERE}: '{source}' has pos_embed of shape {tuple(pos.shape)}; expected [1, 1 + g*g, {D}] "
            f"(one CLS token and a square patch grid, as in timm's ImageNet ViTs)"
        )

    out = {k2: v for k2, v in state.items() if not k2.startswith(_CLASSIFIER)}
    del out["cls_token"], out["pos_embed"], out["patch_embed.proj.weight"]
    out = {f"vit.{k2}": v for k2, v in out.items()}
    out["vit.cls_token"] = state["cls_token"]
    out["vit.patch_embed.proj.weight"] = kernel.sum(dim=1, keepdim=True)
    out["cls_pos_embed"] = pos[:, :1]
    table = pos[:, 1:].reshape(1, side, side, D).permute(0, 3, 1, 2).float()
    out["pos_embed"] = F.interpolate(table, size=(model.n_freq, model.max_time), mode="bilinear", align_corners=False)
    return out


def load_vit_weights(model: Any, path: str | Path) -> None:
    """Load the ViT state dict at ``path`` into ``model`` (an ASTBackbone), adapting it."""
    state = adapt_vit_state(read_state_dict(path), model, str(path))
    own = model.state_dict()
    # The output projection (out_dim > 0) has no ImageNet counterpart: it starts fresh.
    fresh = {k for k in own if k.startswith("proj.")}
    missing = sorted(set(own) - set(state) - fresh)
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ConfigError(
            f"{_WHERE}: '{path}' does not fit this AST: missing {missing[:5] or 'nothing'}, unexpected "
            f"{extra[:5] or 'nothing'}; the file must be a plain timm VisionTransformer (one CLS token, "
            f"no distillation or register tokens) of the same depth and width"
        )
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise ConfigError(
            f"{_WHERE}: '{path}' has tensors of other shapes: {'; '.join(wrong[:3])}; match mlp_ratio "
            f"(hidden = mlp_ratio x embed_dim) and the ViT's other sizes"
        )
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
