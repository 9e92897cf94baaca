"""Plain ViT backbones from timm, and the Shrunk ViT with query down-sampling (QD) inside.

Both return the token maps of the tapped layers as (B, C, h, w) tensors, without prefix
tokens and without a final norm. The paper's AugReg ViTs drop the class token before the
encoder (as the release does) and resize their position embeddings as mmsegmentation does
(`resize_pos_embed`), not as timm does; every other family (segvit.modeling.families) is
timm's own model, built for the padded crop (segvit.modeling.timm_vit).
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

from segvit.errors import SegvitError
from segvit.modeling.specs import QDMode, ViTSpec
from segvit.modeling.timm_vit import create_timm_vit, padded

# References: Dosovitskiy et al. 2021 (ViT); Steiner et al. 2021 (AugReg weights);
# SegViT (Zhang et al., NeurIPS 2022) Sec. 3.3 for query down-sampling; mmsegmentation 0.24
# VisionTransformer.resize_pos_embed (bicubic, align_corners False, no antialiasing).


def resize_pos_embed(pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> Tensor:
    """(1, h*w, C) position embeddings on `old_grid` -> (1, H*W, C) on `new_grid`.

    Bicubic with align_corners False and NO antialiasing, as the release (mmseg's `resize`).
    timm's `resample_abs_pos_embed` antialiases by default, which is another kernel (PIL's
    cubic, a = -0.5) even when enlarging: a 24x24 -> 32x32 resize moves by ~9% of the range.
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if pos.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"{pos.shape[1]} position embeddings do not fill a {old_grid} grid")
    if old_grid == new_grid:
        return pos
    grid = pos.reshape(1, *old_grid, -1).permute(0, 3, 1, 2).float()  # (1, C, h, w)
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False, antialias=False)
    return grid.flatten(2).transpose(1, 2).to(pos.dtype)  # (1, H*W, C)


class _VisionTransformer(VisionTransformer):
    """timm's ViT with mmseg's position-embedding resize for inputs of other sizes.

    timm has no option to turn the antialiasing of its dynamic-size resize off, so
    `create_vit` gives the model this class; only `_pos_embed` differs. It assumes what
    `create_vit` builds: no class or register tokens, patch embeddings as (B, h, w, C).
    """

    def _pos_embed(self, x: Tensor) -> Tensor:
        B, h, w, C = x.shape
        pos = resize_pos_embed(self.pos_embed, self.patch_embed.grid_size, (h, w))
        return self.pos_drop(x.reshape(B, h * w, C) + pos)  # (B, h*w, C)


def create_vit(spec: ViTSpec, img_size: int) -> VisionTransformer:
    """A timm ViT without class token, head or final norm, position embeddings at `img_size`."""
    vit = timm.create_model(
        spec.timm_name,
        pretrained=False,
        img_size=img_size,
        embed_dim=spec.dim,
        depth=spec.depth,
        num_heads=spec.heads,
        drop_path_rate=spec.drop_path,
        class_token=False,
        global_pool="",
        num_classes=0,
        dynamic_img_size=True,  # whole-image inference on other sizes resizes pos_embed
    )
    vit.norm = nn.Identity()  # the release applies no final norm to the tapped features
    vit.__class__ = _VisionTransformer  # the same module; pos_embed resized without antialias
    return vit


class ViTBackbone(nn.Module):
    """A plain ViT returning the outputs of the layers in `out_indices` (0-indexed).

    Arguments:
        spec: the ViT (a paper size, or a timm name resolved by timm_vit.backbone_spec).
        img_size: training crop; the position embeddings (RoPE, relative bias) are made for
            its token grid (the crop rounded up to a multiple of the patch).
        out_indices: layers whose outputs the head reads, shallowest first.
    """

    def __init__(self, *, spec: ViTSpec, img_size: int, out_indices: tuple[int, ...]) -> None:
        super().__init__()
        self.spec = spec
        self.out_indices = tuple(out_indices)
        if max(self.out_indices) >= spec.depth:
            raise SegvitError(f"layer {max(self.out_indices) + 1} tapped; {spec.label} has "
                              f"{spec.depth} layers")  # fmt: skip
        self.img_size = padded(img_size, spec.patch_size)
        if spec.pads:
            self.vit = create_timm_vit(spec, self.img_size, pretrained=None)
        else:
            self.vit = create_vit(spec, img_size)
        self.vit.prune_intermediate_layers(list(self.out_indices), prune_norm=True)

    def forward(self, images: Tensor) -> list[Tensor]:
        if self.spec.family == "beitv2" and tuple(images.shape[-2:]) != (self.img_size,) * 2:
            raise SegvitError(
                f"{self.spec.label}: its relative position bias is built for the "
                f"{self.img_size} crop, not {tuple(images.shape[-2:])}; evaluate with --mode slide"
            )
        return self.vit.forward_intermediates(  # [(B, C, H/p, W/p)] per tap
            images,
            indices=list(self.out_indices),
            norm=False,
            output_fmt="NCHW",
            intermediates_only=True,
        )


class ShrunkViTBackbone(ViTBackbone):
    """A ViT whose block `qd_index` down-samples its queries 2x2 (QD): later blocks run at 1/32.

    The QD block reuses the timm block's own weights: its attention takes the 2x2-subsampled
    normed tokens as queries and all tokens as keys and values, and its residual is the
    subsampled input. timm's `forward_intermediates` assumes one token grid, so this class
    walks the blocks itself.

    Arguments:
        spec, img_size, out_indices: as for ViTBackbone; taps after `qd_index` are at 1/32.
        qd_index: the block that down-samples.
        qd_mode: "q_nearest" (the paper), "qkv_nearest" (Q, K and V subsampled) or "q_conv"
            (a learned stride-2 2x2 convolution makes the queries), the rows of Table 7.
    """

    def __init__(
        self,
        *,
        spec: ViTSpec,
        img_size: int,
        out_indices: tuple[int, ...],
        qd_index: int,
        qd_mode: QDMode = "q_nearest",
    ) -> None:
        super().__init__(spec=spec, img_size=img_size, out_indices=out_indices)
        if not isinstance(self.vit, VisionTransformer):  # Eva (RoPE) and Beit (relative bias)
            raise SegvitError(f"{spec.label}: Shrunk (QD) needs learned position embeddings; "
                              "use the segvit or atm_single structure")  # fmt: skip
        if not 0 <= qd_index <= max(self.out_indices):
            raise ValueError(f"qd_index {qd_index} must lie within the tapped blocks")
        self.qd_index = qd_index
        self.qd_mode = qd_mode
        # Table 7's learned alternative to nearest subsampling of the queries.
        self.qd_conv = (
            nn.Conv2d(spec.dim, spec.dim, kernel_size=2, stride=2) if qd_mode == "q_conv" else None
        )

    def forward(self, images: Tensor) -> list[Tensor]:
        vit = self.vit
        x = vit.patch_embed(images)  # (B, h, w, C): dynamic_img_size keeps the grid
        grid = x.shape[1:3]
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))  # (B, n + h*w, C), n prefix tokens
        n = vit.num_prefix_tokens  # class and register tokens (0 on the AugReg path)
        features = []
        for i, block in enumerate(vit.blocks):
            if i == self.qd_index:
                x, grid = self._query_downsample(block, x, grid)  # (B, n + h*w/4, C)
            else:
                x = block(x)
            if i in self.out_indices:
                features.append(
                    x[:, n:].transpose(1, 2).reshape(x.shape[0], -1, *grid)
                )  # (B,C,h,w)
        return features

    def _query_downsample(
        self, block: Block, x: Tensor, grid: tuple[int, int]
    ) -> tuple[Tensor, tuple[int, int]]:
        attn = block.attn
        B, L, C = x.shape
        heads, head_dim = attn.num_heads, attn.head_dim
        w_q, w_kv = attn.qkv.weight.split([C, 2 * C])
        b_q, b_kv = attn.qkv.bias.split([C, 2 * C])

        n = self.vit.num_prefix_tokens  # prefix tokens are kept whole, as queries and keys
        y = block.norm1(x)  # one LayerNorm for the query and key/value inputs
        x_small = _subsample(x, grid, n)  # (B, n + (L-n)/4, C): the residual path
        if self.qd_conv is not None:
            y_grid = y[:, n:].transpose(1, 2).unflatten(2, grid)  # (B, C, h, w)
            y_q = torch.cat([y[:, :n], self.qd_conv(y_grid).flatten(2).transpose(1, 2)], 1)
        else:
            y_q = _subsample(y, grid, n)
        y_kv = y_q if self.qd_mode == "qkv_nearest" else y
        small = ((grid[0] + 1) // 2, (grid[1] + 1) // 2)

        q = F.linear(y_q, w_q, b_q).unflatten(-1, (heads, head_dim)).transpose(1, 2)
        kv = F.linear(y_kv, w_kv, b_kv).unflatten(-1, (2, heads, head_dim))
        k, v = kv.permute(2, 0, 3, 1, 4)  # (B, heads, L_kv, head_dim) each
        q, k = attn.q_norm(q), attn.k_norm(k)
        dropout = attn.attn_drop.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, heads, L/4, hd)
        out = attn.proj_drop(attn.proj(attn.norm(out.transpose(1, 2).flatten(2))))

        x = x_small + block.drop_path1(block.ls1(out))
        x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        return x, small


def _subsample(tokens: Tensor, grid: tuple[int, int], prefix: int = 0) -> Tensor:
    """Nearest 2x2 down-sampling of (B, n + h*w, C) tokens on their grid: every other row
    and column; the n prefix tokens stay as they are."""
    B, _, C = tokens.shape
    small = tokens[:, prefix:].reshape(B, *grid, C)[:, ::2, ::2].reshape(B, -1, C)
    return torch.cat([tokens[:, :prefix], small], dim=1) if prefix else small
