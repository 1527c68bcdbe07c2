"""Find a pretrained checkpoint (a local folder or the Hugging Face cache), read its configs and fingerprint its weights.

``weights`` is what a user sets (``--set backbone.weights=...``):

- ``hf:ORG/NAME`` or ``hf:ORG/NAME@REVISION``: a model of the Hugging Face Hub. A snapshot already
  in the local cache (``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``) is used as it is,
  without asking the Hub; otherwise it is downloaded once, unless ``HF_HUB_OFFLINE=1`` forbids it.
- a folder: what ``save_pretrained`` or ``hf download ORG/NAME --local-dir DIR`` wrote
  (``config.json`` and the weights, ``preprocessor_config.json`` when the model has one).

Finding the folder is the core's (:mod:`zoo.hub`, shared with the ``ast`` backbone); reading it is this module's.

Nothing here imports torch or transformers: a component's config reads the checkpoint when it is
built (the hidden size, the sample rate and the number of layers decide the component's shape),
and records the weights' sha256 so that a run, a packaged model and the embedding cache all name
the exact weights they used.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.hub import HF_PREFIX, checkpoint_folder, parse_hf  # noqa: F401 - parse_hf: this module's names stay

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
"""Files that hold weights (sharded checkpoints have several, plus a ``*.index.json``)."""
AST_TYPE = "audio-spectrogram-transformer"
_BLOB = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint found on disk: where it is, its ``config.json``, its preprocessor settings and its sha256.

    ``family`` is "ast" for an Audio Spectrogram Transformer, "wav2vec2" for an encoder of raw
    waveforms with a convolutional front end (wav2vec2, HuBERT, WavLM, data2vec-audio, MERT).
    """

    source: str
    folder: Path
    config: dict[str, Any] = field(repr=False)
    preprocessor: dict[str, Any] = field(repr=False)
    sha256: str

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def family(self) -> str:
        return "ast" if self.model_type == AST_TYPE else "wav2vec2"

    @property
    def remote_code(self) -> str:
        """The class the checkpoint's own code defines (``auto_map``), or "" for a model transformers knows."""
        auto = self.config.get("auto_map") or {}
        return str(auto.get("AutoModel", "")) if isinstance(auto, dict) else ""

    @property
    def n_layers(self) -> int:
        return int(self.config.get("num_hidden_layers", 0))

    @property
    def hidden_size(self) -> int:
        return int(self.config.get("hidden_size", 0))


def _read_json(path: Path, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where} setting weights: cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{where} setting weights: {path} holds {type(doc).__name__}, not a JSON object")
    return doc


def weight_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that hold weights, sorted by name (shards and their index included)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and (p.name.endswith(WEIGHT_SUFFIXES) or p.name.endswith(".index.json")))


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file; a Hugging Face cache entry (a link to ``blobs/<sha256>``) is named by it already."""
    target = path.resolve()
    if path.is_symlink() and target.parent.name == "blobs" and _BLOB.match(target.name):
        return target.name
    st = target.stat()
    key = (str(target), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(target, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def weights_sha256(folder: Path) -> str:
    """One sha256 over ``config.json`` and every weight file of ``folder`` (names and contents)."""
    h = hashlib.sha256()
    for path in [folder / "config.json", *weight_files(folder)]:
        h.update(f"{path.name}\t{file_sha256(path)}\n".encode())
    return h.hexdigest()


def load_checkpoint(weights: str, where: str, expected_sha256: str = "") -> Checkpoint:
    """Find ``weights``, read its configs and hash its weights; ConfigError for anything unusable.

    ``expected_sha256`` (a recorded ``weights_hash``) must match when given: a run rebuilt from
    its settings then refuses weights that changed since.
    """
    folder = checkpoint_folder(weights, where)  # the core's one resolver, the ast backbone's too
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{where} setting weights: '{weights}' ({folder}) has no config.json; it must be a transformers "
            f"checkpoint folder (save_pretrained's output, or a Hugging Face model snapshot)"
        )
    if not weight_files(folder):
        raise ConfigError(
            f"{where} setting weights: '{weights}' ({folder}) holds no weights (model.safetensors or "
            f"pytorch_model.bin); the download may be incomplete: fetch it again"
        )
    config = _read_json(folder / "config.json", where)
    pre_path = folder / "preprocessor_config.json"
    preprocessor = _read_json(pre_path, where) if pre_path.is_file() else {}
    digest = weights_sha256(folder)
    if expected_sha256 and expected_sha256 != digest:
        raise ConfigError(
            f"{where}: the weights at '{weights}' ({folder}) have sha256 {digest}, but weights_hash is "
            f"{expected_sha256}: they changed since that hash was recorded. Fetch the recorded revision "
            f"(hf:ORG/NAME@REVISION), or clear weights_hash to accept the weights as they are now"
        )
    return Checkpoint(weights, folder, config, preprocessor, digest)


def check_family(ckpt: Checkpoint, family: str, where: str, hint: str) -> None:
    """Refuse a checkpoint of the other family (an AST where a waveform encoder is expected, or the reverse)."""
    if ckpt.family == family:
        return
    if family == "wav2vec2" and ckpt.family == "ast":
        raise ConfigError(f"{where}: '{ckpt.source}' is an Audio Spectrogram Transformer; {hint}")
    if "conv_stride" not in ckpt.config:
        raise ConfigError(
            f"{where}: '{ckpt.source}' is a '{ckpt.model_type or 'unknown'}' model, neither an Audio Spectrogram "
            f"Transformer nor a wav2vec2-style waveform encoder (wav2vec2, HuBERT, WavLM, MERT); {hint}"
        )
    raise ConfigError(f"{where}: '{ckpt.source}' is a waveform encoder ('{ckpt.model_type}'); {hint}")

