"""Take the architecture a Hugging Face AST checkpoint's config.json gives (``weights=hf:ORG/NAME`` or a folder).

The checkpoint is found by the core's one resolver, :func:`zoo.hub.checkpoint_folder` (the Hugging
Face cache, downloaded once unless ``HF_HUB_OFFLINE=1``; or a local folder). It decides the
architecture: :func:`adopted` gives the :class:`zoo_ast.ASTConfig` whose settings it determines and
that were left at their defaults take the checkpoint's values (one set to another value is an error).
That happens when the backbone is built (:func:`zoo_ast.build`), never when a config is made. The
weights themselves are mapped in :func:`zoo_ast.weights.load_hf_ast_weights`. Pure Python:
importing this loads no torch (``huggingface_hub`` only when a model must be fetched).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.hub import checkpoint_folder, is_hub_name

AST_TYPE = "audio-spectrogram-transformer"


def is_hf_checkpoint(weights: str) -> bool:
    """Whether ``weights`` names a Hugging Face checkpoint (``hf:...`` or a folder) rather than a ViT file."""
    return bool(weights) and (is_hub_name(weights) or Path(weights).expanduser().is_dir())


def read_config(folder: Path, weights: str, where: str) -> dict[str, Any]:
    """The checkpoint's config.json, checked to describe an AST the zoo's blocks can hold."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{where} setting weights: '{weights}' has no readable config.json ({exc}); give a Hugging Face AST "
            f"checkpoint folder, hf:ORG/NAME, or a timm ViT state dict file"
        ) from exc
    if config.get("model_type") != AST_TYPE:
        raise ConfigError(
            f"{where} setting weights: '{weights}' is a '{config.get('model_type')}' model, not an Audio Spectrogram "
            f"Transformer ({AST_TYPE}); the music-zoo-hf plugin's hf-w2v backbone takes waveform encoders"
        )
    if config.get("hidden_act", "gelu") != "gelu" or not config.get("qkv_bias", True):
        raise ConfigError(
            f"{where} setting weights: '{weights}' uses hidden_act={config.get('hidden_act')!r}, "
            f"qkv_bias={config.get('qkv_bias')!r}; the zoo's AST blocks have exact GELU and query/key/value biases"
        )
    return config


def architecture(config: dict[str, Any]) -> dict[str, Any]:
    """The :class:`zoo_ast.ASTConfig` settings an HF AST ``config.json`` determines."""
    hidden = int(config.get("hidden_size", 768))
    return {
        "embed_dim": hidden,
        "depth": int(config.get("num_hidden_layers", 12)),
        "heads": int(config.get("num_attention_heads", 12)),
        "mlp_ratio": int(config.get("intermediate_size", 4 * hidden)) / hidden,
        "patch_size": int(config.get("patch_size", 16)),
        "fstride": int(config.get("frequency_stride", 10)),
        "tstride": int(config.get("time_stride", 10)),
        "max_frames": int(config.get("max_length", 1024)),
        "grid": "floor",
        "distill_token": True,
    }


def adopted(config: Any, where: str) -> Any:
    """``config`` (an ASTConfig) with the architecture of its HF checkpoint; ConfigError on a clash."""
    folder = checkpoint_folder(config.weights, where)
    wanted = architecture(read_config(folder, config.weights, where))
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    clashes = [f"{k}={getattr(config, k)!r} (the checkpoint has {v!r})" for k, v in wanted.items()
               if getattr(config, k) != defaults[k] and getattr(config, k) != v]
    if clashes:
        raise ConfigError(
            f"{where}: weights='{config.weights}' is an AST of another shape: {', '.join(clashes)}; leave these "
            f"settings unset and the checkpoint's are used"
        )
    return dataclasses.replace(config, **wanted)
