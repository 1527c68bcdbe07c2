"""The ``ast`` backbone of Music Zoo (Audio Spectrogram Transformer): typed config and registry spec.

Importing this package is cheap (no torch, no timm); the network is in :mod:`zoo_ast.model`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zoo.bounds import bounded, check_bounds
from zoo.errors import ConfigError
from zoo.protocols import ComponentSpec

from .hub import adopted, is_hf_checkpoint

__version__ = "0.1.0"
WHERE = "backbone 'ast'"


@dataclass(frozen=True)
class ASTConfig:
    """Architecture, input grid and weights of the AST.

    - ``embed_dim``, ``depth``, ``heads``, ``mlp_ratio``: the transformer (timm ViT blocks).
    - ``patch_size`` square patches taken every ``fstride`` bins and ``tstride`` frames
      (strides below the patch size overlap, as in AST: 16 / 10 / 10).
    - ``max_frames``: the time span the learned positional embeddings cover (1300 holds the
      lab's 30 s clips, 1291-1293 frames). Shorter inputs use the first columns (cropped);
      longer ones get the embeddings linearly interpolated along time.
    - ``dropout`` on the embeddings and after each projection; ``attn_dropout`` on the attention
      weights (off by default: drawing a random mask the size of every attention map made a
      CPU training step markedly slower); ``drop_path`` stochastic depth.
    - ``output``: "cls" gives the CLS embedding ``[B, D]``; "sequence" gives the patch tokens
      averaged over frequency ``[B, T', D]`` with lengths, for the task head to pool.
    - ``out_dim``: 0 keeps ``D = embed_dim``; otherwise a linear layer maps to this size.
    - ``grid``: "cover" pads each axis up to a last, partial patch, so every bin and frame is
      covered; "floor" takes whole patches only, as the original AST does (the remainder of an
      axis that a last patch would need is dropped: 128 bins give 12 rows, not 13).
    - ``distill_token``: a second learned token beside CLS, as in the AST (from DeiT); the
      "cls" output is then the mean of the two.
    - ``weights``: a local ImageNet ViT state dict (timm format, .pt/.pth/.safetensors) with the
      same ``embed_dim``, ``depth``, ``heads`` and ``mlp_ratio``; or a Hugging Face AST
      checkpoint (``hf:ORG/NAME[@REVISION]``, e.g. ``hf:MIT/ast-finetuned-audioset-10-10-0.4593``,
      or a folder with its config.json), whose architecture settings (embed_dim, depth, heads,
      mlp_ratio, patch_size, strides, max_frames, grid "floor", distill_token) are taken from
      its config.json wherever they are left at their defaults, when the backbone is built
      (:meth:`resolved`, :mod:`zoo_ast.hub`; making the config reads nothing); empty trains from
      scratch.
    - ``freeze``: keep the patch and position embeddings, the CLS token and the first
      ``freeze`` blocks fixed (0: train everything): its first ``freeze`` ``named_blocks()``.
    """

    embed_dim: int = bounded(192, ge=1)
    depth: int = bounded(4, ge=1)
    heads: int = bounded(3, ge=1)
    mlp_ratio: float = bounded(4.0, gt=0, why="4.0 is usual")
    patch_size: int = bounded(16, ge=1)
    fstride: int = bounded(10, ge=1, le="patch_size", why="a larger step would skip rows between patches")
    tstride: int = bounded(10, ge=1, le="patch_size", why="a larger step would skip frames between patches")
    max_frames: int = bounded(1300, ge=1)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    attn_dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    drop_path: float = bounded(0.1, ge=0.0, lt=1.0)
    output: Literal["cls", "sequence"] = "cls"
    out_dim: int = bounded(0, ge=0, why="0 keeps embed_dim, else the size of a linear map after it")
    grid: Literal["cover", "floor"] = "cover"
    distill_token: bool = False
    weights: str = ""
    freeze: int = bounded(0, ge=0)
    cpu_bf16: ClassVar[bool] = False
    """Measured (bench/precision.py, 128 x 128 crops, batch 16, one thread, AVX-512 BF16): a train step
    1.27x as fast in bf16 autocast as in float32 (channels-last weights change nothing: one
    convolution). Its accuracy in bf16 over 3 seeds has not been checked against float32 yet, so
    ``train.precision=auto`` keeps it in float32: ``--precision bf16`` opts in."""
    train_defaults: ClassVar[dict] = {"epochs": 40, "patience": 0, "batch_size": 16, "lr": 1e-3,
                                      "crop_frames": 128, "mixup": 0.2, "time_masks": 2, "freq_masks": 2}
    """Recommended training settings (read by the zoo's engine, below recipes, --set and flags),
    chosen on the embedded set's validation split over 3 seeds (bench/tune.py, docs/results.md):
    the CNN's recipe (128-frame crops, mixup 0.2, 2 + 2 masks, batches of 16, no early stopping)
    at a peak learning rate of 1e-3 for 40 epochs. Against the former 8 epochs with early stopping:
    validation accuracy 0.574 -> 0.711, test 0.544 -> 0.607, for about five times the training
    time (about 10 minutes per seed on one CPU thread). Still below the stats baseline: a
    transformer trained from scratch on 420 clips; a pretrained start (``weights``) is its remedy."""

    def __post_init__(self) -> None:
        where = WHERE
        check_bounds(self, where)
        if self.embed_dim % self.heads:
            raise ConfigError(
                f"{where}: embed_dim={self.embed_dim} is not divisible by heads={self.heads}; each head "
                f"takes an equal share (e.g. embed_dim=192 with heads=3, 384 with 6, 768 with 12)"
            )


        if not is_hf_checkpoint(self.weights):  # with a checkpoint, depth is known when the backbone is built
            _check_freeze(self)

    def resolved(self) -> ASTConfig:
        """This config with a Hugging Face checkpoint's architecture (``weights``), found now
        (:func:`zoo_ast.hub.adopted`); itself without one (``zoo.protocols.FindsItsFiles``)."""
        if not is_hf_checkpoint(self.weights):
            return self
        config = adopted(self, WHERE)
        _check_freeze(config)
        return config


def _check_freeze(config: ASTConfig) -> None:
    if config.freeze > config.depth:
        raise ConfigError(f"{WHERE}: freeze={config.freeze} must be in 0..depth ({config.depth}); "
                          f"e.g. --set backbone.freeze={config.depth}")


def build(config: ASTConfig, n_bins: int):
    """An :class:`zoo_ast.model.ASTBackbone` for ``n_bins`` frequency rows; with a Hugging Face checkpoint
    (``weights``), found now and its architecture taken (:func:`zoo_ast.hub.adopted`)."""
    from .model import ASTBackbone

    return ASTBackbone(config.resolved(), n_bins)


spec = ComponentSpec(
    kind="backbone",
    name="ast",
    config=ASTConfig,
    build=build,
    summary="Audio Spectrogram Transformer on timm ViT blocks: overlapping 16x16 patches (stride 10), "
            "any length, padded patches masked; CLS embedding [B, 192]; optional local ViT weights",
)
