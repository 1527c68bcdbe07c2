"""Typed settings of the plugin's components, checked (and the checkpoint read) when a component is built.

Every field can be set from the command line (``--set backbone.layer=6``, ``--set fbank.n_mels=64``).
The pretrained components share :class:`Pretrained`: ``weights`` names the checkpoint, and the
config fills ``weights_hash`` with the sha256 of its weights when it is built, so the run's
recorded settings (MLflow params, the packaged model) say exactly which weights were used, and a
rebuild refuses weights that changed since.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from zoo.bounds import bounded, check_bounds
from zoo.errors import ConfigError, suggest

from .checkpoints import AST_TYPE, Checkpoint, check_family, load_checkpoint

AUDIOSET_MEAN = -4.2677393
"""Mean of the AST's Kaldi log-mel filter banks over AudioSet (``ASTFeatureExtractor``'s default)."""
AUDIOSET_STD = 4.5689974
"""Their standard deviation; the AST normalises with ``(fbank - mean) / (2 * std)``."""

LAYER_HELP = ("'last' (the model's output, after its final norm), 'mean' (the mean of every "
              "transformer layer's output) or a layer number N (the output of layer N; 0: its input)")

FINE_TUNING = {"lr": 5e-5, "epochs": 10, "patience": 3, "batch_size": 8, "warmup": 0.1}
"""Training settings for fine-tuning a pretrained transformer (as Hugging Face's audio
classification recipes do): a small learning rate with warm-up, few epochs, small batches."""


def parse_layer(value: str, where: str) -> str | int:
    """``"last"``, ``"mean"`` or a layer number as an int; ConfigError for anything else."""
    text = str(value).strip().lower()
    if text in ("last", "mean"):
        return text
    if text.isdigit():
        return int(text)
    raise ConfigError(f"{where} setting 'layer': {value!r} is not a layer; give {LAYER_HELP}{suggest(text, ['last', 'mean'])}")


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi-compatible log mel filter banks, normalised as the AST was trained.

    ``sr`` Hz audio, ``n_mels`` triangular mel bins, frames of ``frame_length`` ms every
    ``frame_shift`` ms (Hanning window, pre-emphasis 0.97, DC offset removed per frame, no dither:
    ``torchaudio.compliance.kaldi.fbank``'s defaults, as ``ASTFeatureExtractor`` calls it).
    ``normalize``: ``(fbank - mean) / (2 * std)`` with the AudioSet statistics by default (set
    the ones of your checkpoint's ``preprocessor_config.json`` if it differs).
    """

    sr: int = bounded(16000, gt=0)
    n_mels: int = bounded(128, gt=0)
    frame_length: float = bounded(25.0, gt=0)
    frame_shift: float = bounded(10.0, gt=0)
    mean: float = AUDIOSET_MEAN
    std: float = bounded(AUDIOSET_STD, gt=0)
    normalize: bool = True

    def __post_init__(self) -> None:
        check_bounds(self, "feature 'fbank'")

    @property
    def hop_length(self) -> int:
        """The frame step in samples (160 at 16 kHz and 10 ms)."""
        return max(1, round(self.sr * self.frame_shift / 1000))

    @property
    def window(self) -> int:
        """The frame length in samples (400 at 16 kHz and 25 ms)."""
        return max(1, round(self.sr * self.frame_length / 1000))

    @property
    def pad_value(self) -> float:
        """What a zero filter bank becomes after normalisation: the value ``ASTFeatureExtractor`` pads with."""
        return (0.0 - self.mean) / (2 * self.std) if self.normalize else 0.0


@dataclass(frozen=True)
class WaveConfig:
    """The raw waveform at ``sr`` Hz (16000 for wav2vec2 and HuBERT, 24000 for MERT)."""

    sr: int = bounded(16000, gt=0)

    def __post_init__(self) -> None:
        check_bounds(self, "feature 'wave'")


@dataclass(frozen=True)
class Pretrained:
    """What every pretrained component shares: the checkpoint, its record, the layer and the code it may run.

    - ``weights``: ``hf:ORG/NAME[@REVISION]`` (the Hugging Face cache, downloaded once when not
      cached and not offline) or a local checkpoint folder; empty: a small randomly initialised
      model of ``hidden_size``, ``layers`` and ``heads`` (for tests and from-scratch runs).
    - ``weights_hash``: the sha256 of the weights, filled in when the component is built; set it
      to pin the weights (a different file is then an error).
    - ``architecture``: the checkpoint's ``config.json`` and ``preprocessor_config.json`` as one
      JSON text, filled in when the component is built from weights. The zoo rebuilds a packaged
      model without its starting ``weights`` (its own weights replace them): this record then
      builds the same architecture, so a fine-tuned model needs no checkpoint to be loaded again.
    - ``layer``: which hidden layer to return: see :data:`LAYER_HELP`. A number keeps only the
      layers up to it (the rest is never run, nor trained).
    - ``trust_remote_code``: allow a checkpoint that ships its own model code (MERT) to run it.
      Off by default: it executes Python files from the checkpoint folder; read them first.
    - ``hidden_size``, ``layers``, ``heads``: the from-scratch model only; with weights the
      checkpoint decides, and setting them is an error.
    """

    weights: str = ""
    weights_hash: str = ""
    architecture: str = ""
    layer: str = "last"
    trust_remote_code: bool = False
    hidden_size: int = bounded(64, gt=0)
    layers: int = bounded(2, gt=0)
    heads: int = bounded(4, gt=0)
    model_family: ClassVar[str] = ""
    component: ClassVar[str] = ""
    family_hint: ClassVar[str] = ""

    def __post_init__(self) -> None:
        # Pure: reads no checkpoint, changes no field. What the checkpoint decides is resolved() below.
        where = self.component
        layer = parse_layer(self.layer, where)
        if not self.weights and not self.architecture:
            if self.weights_hash:
                raise ConfigError(f"{where}: weights_hash is set but weights is empty; set weights to the checkpoint it names")
            check_bounds(self, where)
            if self.hidden_size % self.heads:
                raise ConfigError(f"{where}: hidden_size={self.hidden_size} is not divisible by heads={self.heads}")
            self._check_layer(layer, self.layers)
            return
        scratch = [f.name for f in dataclasses.fields(Pretrained)
                   if f.name in ("hidden_size", "layers", "heads") and getattr(self, f.name) != f.default]
        if scratch:
            raise ConfigError(
                f"{where}: {', '.join(scratch)} describe the from-scratch model, but the checkpoint brings its own "
                f"architecture; leave them unset (to use fewer layers, set layer=N)"
            )
        if self.architecture:
            try:
                doc = json.loads(self.architecture)
                doc["config"]
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigError(f"{where}: architecture is not a record this plugin wrote ({exc}); clear it") from exc
            if not self.weights:
                if doc.get("code") and not self.trust_remote_code:
                    raise ConfigError(f"{where}: the recorded architecture runs the model code of '{doc['code']}'; "
                                      f"set {self._scope()}.trust_remote_code=true")
                self._check_layer(layer, self.n_layers)

    def resolved(self) -> Any:
        """This config as its checkpoint decides (``zoo.protocols.FindsItsFiles``): the checkpoint
        ``weights`` names is found now (:func:`zoo.hub.checkpoint_folder`: the Hugging Face cache,
        downloaded once unless offline; or a folder), checked (family, its own code, a pinned
        ``weights_hash``, a recorded ``architecture``), and its hash and architecture filled in;
        ``layer`` written as parsed. Without weights nothing is read."""
        where = self.component
        layer = parse_layer(self.layer, where)
        if not self.weights:
            return dataclasses.replace(self, layer=str(layer))
        ckpt = self.checkpoint
        assert ckpt is not None  # weights is set
        check_family(ckpt, self.checkpoint_family(ckpt), where, self.family_hint)
        if ckpt.remote_code and not self.trust_remote_code:
            raise ConfigError(
                f"{where}: '{self.weights}' ships its own model code ({ckpt.remote_code}, in {ckpt.folder}); "
                f"transformers runs it only with --set {self._scope()}.trust_remote_code=true, which executes "
                f"those Python files: read them first"
            )
        record = architecture_record(ckpt)
        if self.architecture and json.loads(self.architecture) != json.loads(record):
            raise ConfigError(
                f"{where}: the architecture recorded in these settings is not that of '{self.weights}'; clear "
                f"architecture (and weights_hash) to start from this checkpoint"
            )
        found = dataclasses.replace(self, layer=str(layer), weights_hash=ckpt.sha256, architecture=record)
        found.__dict__["checkpoint"] = ckpt  # the cached_property below: read once
        found._check_layer(layer, found.n_layers)
        return found

    def checkpoint_family(self, ckpt: Checkpoint) -> str:
        """The family a checkpoint must be of (the component's own; the embedding follows the checkpoint)."""
        return self.model_family

    def _scope(self) -> str:
        return "backbone" if self.component.startswith("backbone") else "hf-embed"

    def _check_layer(self, layer: str | int, n_layers: int) -> None:
        if isinstance(layer, int) and layer > n_layers:
            raise ConfigError(f"{self.component} setting 'layer': {layer} > the model's {n_layers} layers; give {LAYER_HELP}")

    @functools.cached_property
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint ``weights`` names (read once per config), or None without weights."""
        if not self.weights:
            return None
        return load_checkpoint(self.weights, self.component, self.weights_hash)

    @functools.cached_property
    def record(self) -> dict[str, Any]:
        """``{"config": config.json, "preprocessor": ..., "code": source of remote code or ""}``; empty from scratch."""
        return json.loads(self.architecture) if self.architecture else {}

    @property
    def model_config(self) -> dict[str, Any]:
        """The checkpoint's ``config.json`` (from the checkpoint or its record); empty from scratch."""
        return dict(self.record.get("config") or {})

    @property
    def preprocessor(self) -> dict[str, Any]:
        """The checkpoint's ``preprocessor_config.json`` (sample rate, normalisation); may be empty."""
        return dict(self.record.get("preprocessor") or {})

    @property
    def layer_choice(self) -> str | int:
        return parse_layer(self.layer, self.component)

    @property
    def n_layers(self) -> int:
        return int(self.model_config.get("num_hidden_layers", 0)) if self.record else self.layers

    @property
    def width(self) -> int:
        """D, the width of every hidden state."""
        return int(self.model_config.get("hidden_size", 0)) if self.record else self.hidden_size


def architecture_record(ckpt: Checkpoint) -> str:
    """The ``architecture`` setting for ``ckpt``: its configs as canonical JSON (and where its code is)."""
    return json.dumps({"config": ckpt.config, "preprocessor": ckpt.preprocessor,
                       "code": ckpt.source if ckpt.remote_code else ""}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class FineTuned(Pretrained):
    """A pretrained backbone trained further: ``freeze`` keeps its first blocks (``named_blocks()``)
    fixed, and it recommends fine-tuning settings (``train_defaults``: below recipes, --set train.* and flags)."""

    freeze: int = bounded(0, ge=0)
    train_defaults: ClassVar[dict[str, Any]] = FINE_TUNING

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bounds(self, self.component)


@dataclass(frozen=True)
class HFASTConfig(FineTuned):
    """The ``hf-ast`` backbone: Hugging Face's ``ASTModel`` on normalised filter banks (the ``fbank`` feature).

    ``output``: "pooled" gives one embedding per window of ``max_length`` frames (10.24 s for the
    AudioSet checkpoints): the mean of the CLS and distillation tokens, as the AST pools;
    "tokens" gives one embedding per patch column (every ``time_stride`` frames), the patch tokens
    averaged over frequency. ``pad``: the value written past a clip's end up to a whole window
    (None: the checkpoint's normalised zero, what ``ASTFeatureExtractor`` pads with).
    ``freeze``: keep the embeddings and the first ``freeze`` layers fixed (its ``named_blocks()``).
    """

    output: Literal["pooled", "tokens"] = "pooled"
    pad: float | None = None
    model_family: ClassVar[str] = "ast"
    component: ClassVar[str] = "backbone 'hf-ast'"
    family_hint: ClassVar[str] = "use the hf-w2v backbone with the wave feature for it (hf-w2v+wave:TASK)"

    @property
    def fbank(self) -> FbankConfig:
        """The front end the checkpoint was trained with (its ``preprocessor_config.json``)."""
        pre = self.preprocessor
        n_mels = self.model_config.get("num_mel_bins", 128)
        return FbankConfig(sr=int(pre.get("sampling_rate", 16000)), n_mels=int(n_mels),
                           mean=float(pre.get("mean", AUDIOSET_MEAN)), std=float(pre.get("std", AUDIOSET_STD)),
                           normalize=bool(pre.get("do_normalize", True)))

    @property
    def pad_value(self) -> float:
        return self.fbank.pad_value if self.pad is None else float(self.pad)


@dataclass(frozen=True)
class HFW2VConfig(FineTuned):
    """The ``hf-w2v`` backbone: a wav2vec2-style encoder (wav2vec2, HuBERT, WavLM, MERT) through ``AutoModel``.

    ``normalize``: scale each clip to zero mean and unit variance first (None: as the
    checkpoint's ``preprocessor_config.json`` says, ``do_normalize``; off without one).
    ``freeze``: keep the first ``freeze`` blocks fixed: 1 is the convolutional feature encoder
    (what Hugging Face's fine-tuning recipes freeze), 2 adds the projection and the first layer...
    """

    normalize: bool | None = None
    model_family: ClassVar[str] = "wav2vec2"
    component: ClassVar[str] = "backbone 'hf-w2v'"
    family_hint: ClassVar[str] = "use the hf-ast backbone with the fbank feature for it (hf-ast+fbank:TASK)"

    @property
    def sample_rate(self) -> int:
        return int(self.preprocessor.get("sampling_rate", 16000))

    @property
    def normalizes(self) -> bool:
        if self.normalize is not None:
            return self.normalize
        return bool(self.preprocessor.get("do_normalize", False))


@dataclass(frozen=True)
class EmbedConfig(Pretrained):
    """The ``hf-embed`` feature: a frozen pretrained model's hidden states ``[D, T']`` for each clip.

    ``family``: "ast" (filter banks in, one column per patch column) or "wav2vec2" (the waveform
    in, one column per encoder frame); "auto" follows the checkpoint (an AST without weights).
    ``device``: where the model runs while extracting ("auto": cuda when available); it does not
    change the cache key. Everything else (the weights' hash, the layer, the front end) does.
    """

    family: Literal["auto", "ast", "wav2vec2"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    component: ClassVar[str] = "feature 'hf-embed'"
    family_hint: ClassVar[str] = "set hf-embed.family to match it, or leave it at auto"

    def checkpoint_family(self, ckpt: Checkpoint) -> str:
        return ckpt.family if self.family == "auto" else self.family

    @property
    def resolved_family(self) -> str:
        if self.family != "auto":
            return self.family
        if self.record:
            return "ast" if self.model_config.get("model_type") == AST_TYPE else "wav2vec2"
        return "ast"

    def backbone_config(self) -> HFASTConfig | HFW2VConfig:
        """The backbone config that computes this feature (AST: its patch columns, ``output="tokens"``)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(Pretrained)}
        if self.resolved_family == "ast":
            return HFASTConfig(**shared, output="tokens")
        return HFW2VConfig(**shared)
