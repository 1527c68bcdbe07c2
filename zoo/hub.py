"""Find a pretrained checkpoint's local folder: ``hf:ORG/NAME[@REVISION]`` through the Hugging Face cache, or a folder.

The one resolver every plugin with pretrained weights uses (``zoo_ast``, ``zoo_hf``), so they agree on
what a ``weights`` setting means and word their errors alike:

- ``hf:ORG/NAME`` or ``hf:ORG/NAME@REVISION``: a model of the Hugging Face Hub. A snapshot already in
  the local cache (``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``) is used as it is, without
  asking the Hub; otherwise it is downloaded once, unless ``HF_HUB_OFFLINE=1`` forbids it.
- a folder: what ``save_pretrained`` or ``hf download ORG/NAME --local-dir DIR`` wrote.

Call it where the component is built (as transformers' ``from_pretrained`` does), never in a config's
``__post_init__``: making a config reads no file and asks no server. ``huggingface_hub`` is imported
only when a Hub model must be found; the core does not depend on it.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

HF_PREFIX = "hf:"
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
DOWNLOADED = ("*.json", "*.safetensors", "*.bin", "*.py")
"""What a download fetches: configs, weights in either format, and the model code of a trust_remote_code
model (MERT); not the tokenizers, ONNX exports or training states."""
EXAMPLE = "hf:MIT/ast-finetuned-audioset-10-10-0.4593"


def is_hub_name(weights: str) -> bool:
    """Whether ``weights`` names a Hub model (``hf:...``); reads nothing."""
    return weights.startswith(HF_PREFIX)


def parse_hf(weights: str) -> tuple[str, str | None]:
    """``"hf:ORG/NAME@REV"`` -> ``("ORG/NAME", "REV")`` (revision None when not given)."""
    repo, _, revision = weights[len(HF_PREFIX):].strip().partition("@")
    return repo, (revision or None)


def checkpoint_folder(weights: str, where: str) -> Path:
    """The local folder of ``weights`` (``hf:ORG/NAME[@REV]`` or a folder); ConfigError saying how to fix it.

    ``where`` names the component in messages (``backbone 'ast'``).
    """
    if is_hub_name(weights):
        return _from_hub(weights, where)
    path = Path(weights).expanduser()
    if path.is_file():
        raise ConfigError(
            f"{where} setting weights: '{weights}' is a file; give the folder that holds config.json and the "
            f"weights (what save_pretrained or `hf download ORG/NAME --local-dir DIR` writes), or hf:ORG/NAME"
        )
    if not path.is_dir():
        raise ConfigError(
            f"{where} setting weights: folder '{weights}' not found; give a local checkpoint folder or "
            f"hf:ORG/NAME (a Hugging Face model, e.g. {EXAMPLE})"
        )
    return path.resolve()


def _from_hub(weights: str, where: str) -> Path:
    repo, revision = parse_hf(weights)
    if not _REPO.match(repo):
        raise ConfigError(
            f"{where} setting weights: '{weights}' does not name a Hugging Face model; write hf:ORG/NAME "
            f"(optionally @REVISION), e.g. {EXAMPLE}"
        )
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:
        raise ConfigError(f"{where} setting weights: '{weights}' is a Hugging Face model, and reading one needs "
                          f"huggingface_hub: pip install huggingface_hub (or give a local folder)") from exc

    fetch = f"`hf download {repo}{f' --revision {revision}' if revision else ''}`"
    try:  # the cache first: a cached model needs no network at all
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ConfigError(f"{where} setting weights: cannot read '{weights}' from the Hugging Face cache: {exc}") from exc
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=list(DOWNLOADED)))
    except LocalEntryNotFoundError as exc:
        raise ConfigError(
            f"{where} setting weights: '{weights}' is not in the Hugging Face cache and cannot be downloaded "
            f"now (offline: HF_HUB_OFFLINE=1, or no connection). Fetch it once where there is a connection "
            f"with {fetch} (the cache is HF_HUB_CACHE, default ~/.cache/huggingface/hub), or set weights to "
            f"a local folder"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ConfigError(
            f"{where} setting weights: cannot download '{weights}': {type(exc).__name__}: {exc}; check the "
            f"name on the Hub (a gated model needs `hf auth login`), or fetch it with {fetch}"
        ) from exc


__all__ = ["HF_PREFIX", "DOWNLOADED", "is_hub_name", "parse_hf", "checkpoint_folder"]
