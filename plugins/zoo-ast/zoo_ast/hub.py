"""Find a Hugging Face AST checkpoint (``hf:ORG/NAME`` or a folder) and take the architecture its config.json gives.

``weights=hf:ORG/NAME[@REVISION]`` reads the Hugging Face cache (``HF_HUB_CACHE``): a cached
snapshot is used without asking the Hub; otherwise it is downloaded once, unless
``HF_HUB_OFFLINE=1``. ``weights=FOLDER`` reads a folder that ``save_pretrained`` or
``hf download ORG/NAME --local-dir FOLDER`` wrote. Either way the checkpoint decides the
architecture: every setting of :class:`zoo_ast.ASTConfig` that it determines and that is left
at its default takes the checkpoint's value, and one set to another value is an error. The
weights themselves are mapped in :func:`zoo_ast.weights.load_hf_ast_weights`. Pure Python:
importing this loads no torch (``huggingface_hub`` only when a model must be fetched).
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError

HF_PREFIX = "hf:"
AST_TYPE = "audio-spectrogram-transformer"
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_WANTED = ["*.json", "*.safetensors", "*.bin"]


def is_hf_checkpoint(weights: str) -> bool:
    """Whether ``weights`` names a Hugging Face checkpoint (``hf:...`` or a folder) rather than a ViT file."""
    return bool(weights) and (weights.startswith(HF_PREFIX) or Path(weights).expanduser().is_dir())


def checkpoint_folder(weights: str, where: str) -> Path:
    """The local folder of ``weights``: the cached (or freshly downloaded) snapshot, or the folder itself."""
    if not weights.startswith(HF_PREFIX):
        return Path(weights).expanduser().resolve()
    repo, _, revision = weights[len(HF_PREFIX):].strip().partition("@")
    if not _REPO.match(repo):
        raise ConfigError(f"{where} setting weights: '{weights}' does not name a Hugging Face model; write hf:ORG/NAME[@REVISION]")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    fetch = f"`hf download {repo}{f' --revision {revision}' if revision else ''}`"
    for cached in (True, False):
        try:
            return Path(snapshot_download(repo, revision=revision or None, local_files_only=cached,
                                          allow_patterns=None if cached else _WANTED))
        except LocalEntryNotFoundError as exc:
            if not cached:
                raise ConfigError(
                    f"{where} setting weights: '{weights}' is not in the Hugging Face cache and cannot be "
                    f"downloaded now (HF_HUB_OFFLINE=1, or no connection); fetch it once with {fetch}, or set "
                    f"weights to a local folder"
                ) from exc
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise ConfigError(f"{where} setting weights: cannot get '{weights}': {type(exc).__name__}: {exc}") from exc
    raise AssertionError("unreachable")


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


def adopt_architecture(config: Any, where: str) -> None:
    """Set ``config``'s (a frozen ASTConfig being built) architecture from its HF checkpoint; ConfigError on a clash."""
    folder = checkpoint_folder(config.weights, where)
    if not folder.is_dir():
        raise ConfigError(f"{where} setting weights: folder '{config.weights}' not found")
    wanted = architecture(read_config(folder, config.weights, where))
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    clashes = [f"{k}={getattr(config, k)!r} (the checkpoint has {v!r})" for k, v in wanted.items()
               if getattr(config, k) != defaults[k] and getattr(config, k) != v]
    if clashes:
        raise ConfigError(
            f"{where}: weights='{config.weights}' is an AST of another shape: {', '.join(clashes)}; leave these "
            f"settings unset and the checkpoint's are used"
        )
    for key, value in wanted.items():
        object.__setattr__(config, key, value)  # the config is frozen; this is its own __post_init__
