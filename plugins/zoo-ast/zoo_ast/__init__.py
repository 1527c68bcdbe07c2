"""The ``ast`` backbone of Music Zoo (Audio Spectrogram Transformer): typed config and registry spec.

Importing this package is cheap (no torch, no timm); the network is in :mod:`zoo_ast.model`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zoo.errors import ConfigError
from zoo.protocols import ComponentSpec

from .hub import adopt_architecture, is_hf_checkpoint

__version__ = "0.1.0"


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
      its config.json wherever they are left at their defaults (see :mod:`zoo_ast.hub`); empty
      trains from scratch.
    - ``freeze``: keep the patch and position embeddings, the CLS token and the first
      ``freeze`` blocks fixed (0: train everything): its first ``freeze`` ``named_blocks()``.
    """

    embed_dim: int = 192
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 4.0
    patch_size: int = 16
    fstride: int = 10
    tstride: int = 10
    max_frames: int = 1300
    dropout: float = 0.1
    attn_dropout: float = 0.0
    drop_path: float = 0.1
    output: Literal["cls", "sequence"] = "cls"
    out_dim: int = 0
    grid: Literal["cover", "floor"] = "cover"
    distill_token: bool = False
    weights: str = ""
    freeze: int = 0
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
        where = "backbone 'ast'"
        if is_hf_checkpoint(self.weights):
            adopt_architecture(self, where)
        for name in ("embed_dim", "depth", "heads", "patch_size", "max_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}: {name}={getattr(self, name)} must be at least 1")
        if self.embed_dim % self.heads:
            raise ConfigError(
                f"{where}: embed_dim={self.embed_dim} is not divisible by heads={self.heads}; each head "
                f"takes an equal share (e.g. embed_dim=192 with heads=3, 384 with 6, 768 with 12)"
            )
        for name in ("fstride", "tstride"):
            stride = getattr(self, name)
            if not 1 <= stride <= self.patch_size:
                raise ConfigError(
                    f"{where}: {name}={stride} must be in 1..patch_size ({self.patch_size}); a larger "
                    f"step would skip rows or frames between patches"
                )
        if self.mlp_ratio <= 0:
            raise ConfigError(f"{where}: mlp_ratio={self.mlp_ratio} must be positive (4.0 is usual)")
        for name in ("dropout", "attn_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{where}: {name}={getattr(self, name)} must be in [0, 1)")
        if self.out_dim < 0:
            raise ConfigError(f"{where}: out_dim={self.out_dim} must be 0 (keep embed_dim) or a positive size")
        if not 0 <= self.freeze <= self.depth:
            raise ConfigError(f"{where}: freeze={self.freeze} must be in 0..depth ({self.depth})")


def build(config: ASTConfig, n_bins: int):
    """An :class:`zoo_ast.model.ASTBackbone` for ``n_bins`` frequency rows."""
    from .model import ASTBackbone

    return ASTBackbone(config, n_bins)


spec = ComponentSpec(
    kind="backbone",
    name="ast",
    config=ASTConfig,
    build=build,
    summary="Audio Spectrogram Transformer on timm ViT blocks: overlapping 16x16 patches (stride 10), "
            "any length, padded patches masked; CLS embedding [B, 192]; optional local ViT weights",
)
