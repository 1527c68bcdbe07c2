"""The AST network: overlapping spectrogram patches, learned 2-D positions, timm ViT blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.model.layers import check_bins, check_input, clamp_lengths, length_mask, window_counts, zero_padding
from zoo.protocols import BackboneOutput

from . import ASTConfig
from .grid import n_patches, padded_size
from .hub import is_hf_checkpoint

WHO = "backbone 'ast'"


class ASTBackbone(nn.Module):
    """``forward(x: Tensor[B, F, T], lengths: Tensor[B]) -> BackboneOutput``.

    The spectrogram is a one-channel image cut into ``patch_size`` squares every ``fstride``
    bins and ``tstride`` frames (timm's ``PatchEmbed`` with an overlapping projection), giving
    a grid ``[nf, nt]`` of tokens (see :func:`zoo_ast.grid.n_patches`: with ``grid="cover"``
    every bin and frame is covered, the axis is zero-padded up to the last patch; with "floor",
    whole patches only, as the original AST). A CLS token (and with ``distill_token`` the AST's
    distillation token after it) is prepended and the tokens go through the blocks of a timm
    ``VisionTransformer``.

    Positions: one learned embedding per grid cell for ``nf`` x ``n_patches(max_frames)``.
    An input with fewer time patches uses the first columns (so a patch's position does not
    depend on the padding of its batch); a longer one interpolates the table linearly along
    time (then positions, and outputs, do depend on the padded length).

    Padding: frames past a clip's length are zeroed, and the time patches past the ones that
    cover the clip alone (``n_patches(length)``) are masked out of attention as keys. So in eval
    mode a clip gives the same output alone and in a padded batch (up to ``max_frames``).

    Output (``config.output``): "cls" -> ``Tensor[B, D]`` (with a distillation token, the mean of
    the two tokens, as the AST pools); "sequence" -> ``Tensor[B, nt, D]``
    (tokens averaged over frequency, zero past each clip's patch count) with those counts as
    lengths. ``D = out_dim`` (``embed_dim`` unless ``config.out_dim`` > 0).

    Submodules (for freezing or fine-tuning by name): ``vit.patch_embed``, ``pos_embed``,
    ``cls_pos_embed`` (one row per special token), ``vit.cls_token``, ``dist_token`` (or None),
    ``vit.blocks.{i}``, ``vit.norm``, ``proj``.
    """

    def __init__(self, config: ASTConfig, n_bins: int):
        super().__init__()
        from timm.layers import PatchEmbed
        from timm.models.vision_transformer import VisionTransformer

        self.config = config
        self.n_bins = check_bins(n_bins, WHO)
        k, D = config.patch_size, config.embed_dim
        self.patch, self.fstride, self.tstride = k, config.fstride, config.tstride
        self.grid = config.grid
        self.n_freq = n_patches(self.n_bins, k, config.fstride, self.grid)
        self.max_time = n_patches(config.max_frames, k, config.tstride, self.grid)
        self.n_special = 2 if config.distill_token else 1  # CLS, and the AST's distillation token
        self.out_dim = config.out_dim or D
        self.output = config.output

        # timm builds the blocks, the CLS token and the final norm; positions are ours because
        # timm's table is tied to one fixed image size and we need crop/interpolate per batch.
        self.vit = VisionTransformer(
            img_size=k, patch_size=k, in_chans=1, num_classes=0, global_pool="token",
            embed_dim=D, depth=config.depth, num_heads=config.heads, mlp_ratio=config.mlp_ratio,
            class_token=True, pos_embed="none", pos_drop_rate=config.dropout,
            proj_drop_rate=config.dropout, attn_drop_rate=config.attn_dropout, drop_path_rate=config.drop_path,
        )
        # img_size=None lifts timm's fixed-size check; the projection is swapped for one whose
        # stride is smaller than its kernel (overlapping patches, which PatchEmbed cannot make).
        self.vit.patch_embed = PatchEmbed(img_size=None, patch_size=k, in_chans=1, embed_dim=D)
        self.vit.patch_embed.proj = nn.Conv2d(1, D, kernel_size=k, stride=(config.fstride, config.tstride))
        self.pos_embed = nn.Parameter(torch.zeros(1, D, self.n_freq, self.max_time))
        self.cls_pos_embed = nn.Parameter(torch.zeros(1, self.n_special, D))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, D)) if config.distill_token else None
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_pos_embed, std=0.02)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        self.proj = nn.Linear(D, config.out_dim) if config.out_dim else nn.Identity()

        if is_hf_checkpoint(config.weights):
            from .weights import load_hf_ast_weights

            load_hf_ast_weights(self, config.weights)
        elif config.weights:
            from .weights import load_vit_weights

            load_vit_weights(self, config.weights)
        for _, members in self.named_blocks()[: config.freeze]:
            for member in members:
                for p in member.parameters() if isinstance(member, nn.Module) else [member]:
                    p.requires_grad_(False)

    def named_blocks(self) -> list[tuple[str, list[nn.Module | nn.Parameter]]]:
        """Its blocks for freezing, input first: ``vit.blocks.0`` with the embeddings that feed it
        (patch projection, positions, CLS token), ``vit.blocks.1``, ..., then ``vit.norm`` and,
        when it has weights, ``proj``. The ``freeze`` setting keeps the first ``freeze`` fixed."""
        assert self.vit.cls_token is not None  # built with class_token=True
        embeddings: list[nn.Module | nn.Parameter] = [self.vit.patch_embed, self.pos_embed, self.cls_pos_embed,
                                                      self.vit.cls_token]
        if self.dist_token is not None:
            embeddings.append(self.dist_token)
        blocks: list[tuple[str, list[nn.Module | nn.Parameter]]] = [
            (f"vit.blocks.{i}", [block]) for i, block in enumerate(self.vit.blocks)]
        blocks[0] = (blocks[0][0], embeddings + blocks[0][1])
        blocks.append(("vit.norm", [self.vit.norm]))
        if any(True for _ in self.proj.parameters()):
            blocks.append(("proj", [self.proj]))
        return blocks

    def time_patches(self, lengths: torch.Tensor) -> torch.Tensor:
        """How many time patches each clip has alone: ``Tensor[B]`` (see :func:`zoo_ast.grid.n_patches`)."""
        if self.grid == "floor":
            return torch.div((lengths - self.patch).clamp(min=0), self.tstride, rounding_mode="floor") + 1
        return window_counts(lengths, self.patch, self.tstride)

    def positions(self, nt: int) -> torch.Tensor:
        """Position embeddings for a ``[n_freq, nt]`` grid: ``Tensor[1, n_freq * nt, D]``."""
        pos: torch.Tensor = self.pos_embed
        if nt <= self.max_time:
            pos = pos[..., :nt]
        else:
            pos = F.interpolate(pos, size=(self.n_freq, nt), mode="bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> BackboneOutput:
        """``x: Tensor[B, F, T]`` zero-padded along T, ``lengths: Tensor[B]`` (clamped to 1..T;
        checking them would force a host sync every step)."""
        check_input(x, lengths, self.n_bins, WHO)
        B, Fb, T = x.shape
        lengths = clamp_lengths(lengths, T, x.device)
        # Zeroed so a clip's last, partly padded patch sees what it sees alone: zeros.
        x = zero_padding(x, length_mask(lengths, T))
        nt = n_patches(T, self.patch, self.tstride, self.grid)
        # Pad (or, on a "floor" grid, crop: negative padding) each axis to what its patches span.
        x = F.pad(x, (0, padded_size(nt, self.patch, self.tstride) - T,
                      0, padded_size(self.n_freq, self.patch, self.fstride) - Fb))
        tokens = self.vit.patch_embed(x.unsqueeze(1)) + self.positions(nt)  # [B, nf*nt, D]
        assert self.vit.cls_token is not None  # built with class_token=True
        leading = (self.vit.cls_token,) + ((self.dist_token,) if self.dist_token is not None else ())
        special = torch.cat(leading, dim=1).expand(B, -1, -1) + self.cls_pos_embed
        h = self.vit.norm_pre(self.vit.pos_drop(torch.cat([special, tokens], dim=1)))

        # Time patches a clip has alone; the rest are keys nobody may attend to.
        valid_t = self.time_patches(lengths)  # [B]
        keep_t = length_mask(valid_t, nt)  # [B, nt]
        keep = torch.cat([keep_t.new_ones(B, self.n_special),
                          keep_t[:, None, :].expand(B, self.n_freq, nt).reshape(B, -1)], dim=1)
        attn_mask = keep[:, None, None, :]  # [B, 1, 1, special + nf*nt], True = may be attended to
        for block in self.vit.blocks:
            h = block(h, attn_mask=attn_mask)
        h = self.vit.norm(h)

        if self.output == "cls":
            return BackboneOutput(self.proj(h[:, : self.n_special].mean(dim=1)))
        seq = h[:, self.n_special:].reshape(B, self.n_freq, nt, -1).mean(dim=1)  # [B, nt, D]
        seq = zero_padding(self.proj(seq), keep_t, dim=1)
        return BackboneOutput(seq, valid_t)
