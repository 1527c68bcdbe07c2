"""Start an AST from pretrained weights: an ImageNet ViT state dict (timm format) or a Hugging Face AST checkpoint.

An ImageNet ViT: nothing is downloaded, the user points ``--set backbone.weights=PATH`` at a file
they have. What changes on the way in:

- ``patch_embed.proj.weight [D, 3, k, k]`` -> ``[D, 1, k, k]`` by summing the RGB kernels: a
  grey image (R = G = B = x) gives the same response as the colour kernel, so the pretrained
  filters keep their scale on a one-channel spectrogram.
- ``pos_embed [1, 1 + g*g, D]``: the CLS entry goes to ``cls_pos_embed``; the square ``g x g``
  grid is resized bilinearly to the AST grid ``[n_freq, n_patches(max_frames)]``.
- ``head.*`` (the ImageNet classifier) is left out on purpose: the zoo's task heads replace it.

Every other tensor must match by name and shape; anything missing or extra is an error that
says what to change, never skipped.

A Hugging Face AST (``weights=hf:ORG/NAME`` or a checkpoint folder, see :mod:`zoo_ast.hub`, which
also sets the architecture from its config.json): :func:`load_hf_ast_weights` maps transformers'
names onto the zoo's (query, key and value are fused into timm's ``qkv``; the position table
``[1, 2 + nf*nt, D]`` splits into the CLS and distillation rows and the ``[nf, nt]`` grid; the
AudioSet classifier is left out). The zoo's AST then computes what ``ASTModel`` computes, with
two differences by design: past a clip's end the zoo masks its padded patches out of attention
where the AST attends to the padded frames, and a clip longer than the checkpoint's
``max_length`` (1024 frames) gets the position table interpolated along time where
``ASTFeatureExtractor`` cuts the clip. A clip of exactly ``max_length`` frames gives the same
output from both, up to float rounding.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from zoo.errors import ConfigError
from zoo.fsio import read_torch

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
    fix = "it must be a torch state dict saved with torch.save(model.state_dict(), ...) or a .safetensors file"
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # any decoding failure means the file is not a usable checkpoint
            raise ConfigError(f"{_WHERE}: cannot read '{path}' ({type(exc).__name__}: {exc}); {fix}") from exc
    else:  # as data only: a file that names code to run is refused, nothing in it runs
        obj = read_torch(path, f"{_WHERE}: the file", fix, ConfigError)
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


# transformers' names for the same tensors: the 4.x layout (and the one checkpoints are saved in)
# on the left, the 5.x module layout on the right; both are read.
_HF_PREFIXES = ("audio_spectrogram_transformer.",)
_HF_LAYER = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)$")
_HF_LAYER_NAMES = {
    "attention.attention.query": "q", "attention.q_proj": "q",
    "attention.attention.key": "k", "attention.k_proj": "k",
    "attention.attention.value": "v", "attention.v_proj": "v",
    "attention.output.dense": "attn.proj", "attention.o_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1", "mlp.fc1": "mlp.fc1",
    "output.dense": "mlp.fc2", "mlp.fc2": "mlp.fc2",
    "layernorm_before": "norm1", "layernorm_after": "norm2",
}


def read_hf_state_dict(folder: Path, source: str) -> dict[str, torch.Tensor]:
    """The tensors of a transformers checkpoint folder (safetensors or torch files, sharded or not),
    without the ``audio_spectrogram_transformer.`` prefix of a classification checkpoint."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ConfigError(
            f"{_WHERE}: '{source}' ({folder}) holds no model.safetensors or pytorch_model.bin; the download may "
            f"be incomplete: fetch it again"
        )
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(read_state_dict(path))
    out = {}
    for key, value in state.items():
        for prefix in _HF_PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def adapt_hf_ast_state(state: Mapping[str, torch.Tensor], model: Any, source: str) -> dict[str, torch.Tensor]:
    """Map an HF ``ASTModel`` state dict onto ``model`` (an ASTBackbone built from the same config.json)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[int, dict[str, dict[str, torch.Tensor]]] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith("classifier."):
            continue  # the AudioSet head: the zoo's task heads replace it
        m = _HF_LAYER.match(key)
        if m:
            i, rest = int(m.group(1)), m.group(2)
            name, _, kind = rest.rpartition(".")
            target = _HF_LAYER_NAMES.get(name)
            if target in ("q", "k", "v"):
                qkv.setdefault(i, {}).setdefault(kind, {})[target] = value
            elif target:
                out[f"vit.blocks.{i}.{target}.{kind}"] = value
            else:
                unknown.append(key)
        elif key == "embeddings.cls_token":
            out["vit.cls_token"] = value
        elif key == "embeddings.distillation_token":
            out["dist_token"] = value
        elif key.startswith("embeddings.patch_embeddings.projection."):
            out[f"vit.patch_embed.proj.{key.rsplit('.', 1)[1]}"] = value
        elif key.startswith("layernorm."):
            out[f"vit.norm.{key.rsplit('.', 1)[1]}"] = value
        elif key != "embeddings.position_embeddings":
            unknown.append(key)
    if unknown:
        raise ConfigError(f"{_WHERE}: '{source}' holds tensors an AST does not have: {', '.join(sorted(unknown)[:5])}")
    for i, kinds in qkv.items():
        for kind, parts in kinds.items():
            if set(parts) != {"q", "k", "v"}:
                raise ConfigError(f"{_WHERE}: '{source}' layer {i} lacks some of query, key and value {kind}s")
            # timm's fused projection is [query; key; value], each laid out head by head, as transformers' are.
            out[f"vit.blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    pos = state.get("embeddings.position_embeddings")
    D, nf, nt = model.config.embed_dim, model.n_freq, model.max_time
    if pos is None or tuple(pos.shape) != (1, model.n_special + nf * nt, D):
        got = "none" if pos is None else str(tuple(pos.shape))
        raise ConfigError(
            f"{_WHERE}: '{source}' has position embeddings {got}, but this AST needs (1, {model.n_special} + "
            f"{nf} x {nt}, {D}): {nf} frequency rows for {model.n_bins} bins. The checkpoint's bins are its "
            f"config.json's num_mel_bins: use the fbank feature with that many (ast+fbank:TASK)"
        )
    out["cls_pos_embed"] = pos[:, : model.n_special]
    out["pos_embed"] = pos[:, model.n_special:].reshape(1, nf, nt, D).permute(0, 3, 1, 2)
    return out


def load_hf_ast_weights(model: Any, weights: str) -> None:
    """Load the Hugging Face AST checkpoint ``weights`` (``hf:ORG/NAME`` or a folder) into ``model`` (an ASTBackbone)."""
    from zoo.hub import checkpoint_folder

    folder = checkpoint_folder(weights, "backbone 'ast'")
    state = adapt_hf_ast_state(read_hf_state_dict(folder, weights), model, weights)
    own = model.state_dict()
    fresh = {k for k in own if k.startswith("proj.")}  # out_dim > 0: no counterpart in the checkpoint
    missing = sorted(set(own) - set(state) - fresh)
    extra = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and v.shape != own[k].shape]
    if missing or extra or wrong:
        raise ConfigError(
            f"{_WHERE}: '{weights}' does not fit this AST: missing {missing[:5] or 'nothing'}, unexpected "
            f"{extra[:5] or 'nothing'}, other shapes {wrong[:3] or 'none'}; leave the architecture settings "
            f"unset so that they follow the checkpoint's config.json"
        )
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
