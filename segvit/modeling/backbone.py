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
from timm.layers import apply_rot_embed_cat
from timm.models.beit import Beit
from timm.models.beit import Block as BeitBlock
from timm.models.eva import Eva, EvaBlock
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
        self._check_size(images)
        return self.vit.forward_intermediates(  # [(B, C, H/p, W/p)] per tap
            images,
            indices=list(self.out_indices),
            norm=False,
            output_fmt="NCHW",
            intermediates_only=True,
        )

    def _check_size(self, images: Tensor) -> None:
        """BEiT's relative bias is built for one grid: another input size is one line."""
        if self.spec.family == "beitv2" and tuple(images.shape[-2:]) != (self.img_size,) * 2:
            raise SegvitError(
                f"{self.spec.label}: its relative position bias is built for the "
                f"{self.img_size} crop, not {tuple(images.shape[-2:])}; evaluate with --mode slide"
            )


class ShrunkViTBackbone(ViTBackbone):
    """A ViT whose block `qd_index` down-samples its queries 2x2 (QD): later blocks run at 1/32.

    The QD block reuses the timm block's own weights: its attention takes the 2x2-subsampled
    normed tokens as queries and all tokens as keys and values, and its residual is the
    subsampled input. timm's `forward_intermediates` assumes one token grid, so this class
    walks the blocks itself.

    Position terms go with the tokens. Learned embeddings are added at the input, so a kept
    token carries its own. RoPE (DINOv3, EVA-02) and relative position bias (BEiT v2) act in
    every attention; from QD on, each kept token keeps its place on the full-resolution grid
    (its RoPE row, the bias of its offsets on that grid). The blocks after QD therefore see
    positions the pretrained weights know, only fewer of them, exactly as a learned-position
    ViT does; docs/backbones.md says why this beats recomputing them for the small grid.

    Arguments:
        spec, img_size, out_indices: as for ViTBackbone; taps after `qd_index` are at 1/32.
        qd_index: the block that down-samples.
        qd_mode: "q_nearest" (the paper), "qkv_nearest" (Q, K and V subsampled) or "q_conv"
            (a learned stride-2 2x2 convolution makes the queries; each sits at the place of
            its cell's top-left token), the rows of Table 7.
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
        odd = next((type(b).__name__ for b in self.vit.blocks if type(b) not in _PRE_NORM), None)
        if odd or getattr(self.vit, "rope_mixed", False) or getattr(self.vit, "rel_pos_bias", None):
            what = f"its {odd} blocks" if odd else "position terms shared across its blocks"
            raise SegvitError(f"{spec.label}: Shrunk (QD) is not built on {what}; "
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
        self._check_size(images)
        x, grid, rope = self._embed(images)  # (B, n + h*w, C), n prefix tokens
        n = self.vit.num_prefix_tokens  # class and register tokens (0 on the AugReg path)
        keep = None  # from QD on: the kept tokens' places on the full grid
        features = []
        for i, block in enumerate(self.vit.blocks):
            if i == self.qd_index:
                x, keep, grid = self._query_downsample(block, x, grid, rope)  # n + h*w/4 tokens
            elif keep is not None and isinstance(block, BeitBlock):  # its bias is per block
                y = block.norm1(x)
                x = self._block(block, x, y, y, keep, keep, rope)
            elif rope is not None:
                x = block(x, rope=rope if keep is None else rope[keep])  # timm's own block
            else:
                x = block(x)
            if i in self.out_indices:
                features.append(
                    x[:, n:].transpose(1, 2).reshape(x.shape[0], -1, *grid)
                )  # (B,C,h,w)
        return features

    def _embed(self, images: Tensor) -> tuple[Tensor, tuple[int, int], Tensor | None]:
        """The tokens before the first block, their grid, and the grid's RoPE rows (or None)."""
        vit = self.vit
        if isinstance(vit, Beit):  # built for one grid; the bias comes in each attention
            x = vit.patch_embed(images)  # (B, h*w, C)
            x = torch.cat([vit.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            if vit.pos_embed is not None:
                x = x + vit.pos_embed
            return vit.pos_drop(x), tuple(vit.patch_embed.grid_size), None
        x = vit.patch_embed(images)  # (B, h, w, C): dynamic_img_size keeps the grid
        grid = tuple(x.shape[1:3])
        if isinstance(vit, Eva):
            x, rope = vit._pos_embed(x)  # rope: (h*w, D) for the patch tokens
            return vit.norm_pre(x), grid, rope
        return vit.norm_pre(vit.patch_drop(vit._pos_embed(x))), grid, None

    def _query_downsample(
        self, block: nn.Module, x: Tensor, grid: tuple[int, int], rope: Tensor | None = None
    ) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """Block `block` with every other row and column of the tokens as queries: the
        (B, n + h*w/4, C) tokens, the kept places on the full grid, and the small grid."""
        n = self.vit.num_prefix_tokens  # prefix tokens are kept whole, as queries and keys
        keep = _every_other(grid, x.device)  # (h*w/4,) places on the full grid
        y = block.norm1(x)  # one LayerNorm for the query and key/value inputs
        x_small = _subsample(x, grid, n)  # (B, n + (L-n)/4, C): the residual path
        if self.qd_conv is not None:
            y_grid = y[:, n:].transpose(1, 2).unflatten(2, grid)  # (B, C, h, w)
            y_q = torch.cat([y[:, :n], self.qd_conv(y_grid).flatten(2).transpose(1, 2)], 1)
        else:
            y_q = _subsample(y, grid, n)
        if self.qd_mode == "qkv_nearest":
            x = self._block(block, x_small, y_q, y_q, keep, keep, rope)
        else:
            x = self._block(block, x_small, y_q, y, keep, None, rope)
        return x, keep, ((grid[0] + 1) // 2, (grid[1] + 1) // 2)

    def _block(
        self,
        block: nn.Module,
        residual: Tensor,
        y_q: Tensor,
        y_kv: Tensor,
        q_keep: Tensor | None,
        k_keep: Tensor | None,
        rope: Tensor | None,
    ) -> Tensor:
        """A pre-norm block on normed queries `y_q` (at places `q_keep` of the full grid,
        None: all) and normed keys and values `y_kv` (at `k_keep`); `residual` matches y_q."""
        out = self._attend(block.attn, y_q, y_kv, q_keep, k_keep, rope)
        x = residual + block.drop_path1(_layer_scale(block, 1, out))
        return x + block.drop_path2(_layer_scale(block, 2, block.mlp(block.norm2(x))))

    def _attend(
        self,
        attn: nn.Module,
        y_q: Tensor,
        y_kv: Tensor,
        q_keep: Tensor | None,
        k_keep: Tensor | None,
        rope: Tensor | None,
    ) -> Tensor:
        """The arithmetic of timm's ViT, EVA and BEiT attention, with queries and keys at
        places of the full grid: RoPE rows and relative bias taken at those places."""
        n = self.vit.num_prefix_tokens
        weights, biases = _projections(attn)
        q, k, v = (
            F.linear(y, w, b).unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
            for y, w, b in zip((y_q, y_kv, y_kv), weights, biases, strict=True)
        )  # (B, heads, L, head_dim) each
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        if rope is not None:  # Eva: prefix tokens are not rotated
            half = attn.rotate_half
            q = _rotate(q, rope if q_keep is None else rope[q_keep], n, half).type_as(v)
            k = _rotate(k, rope if k_keep is None else rope[k_keep], n, half).type_as(v)
        bias = None
        if getattr(attn, "relative_position_bias_table", None) is not None:  # Beit
            bias = attn._get_rel_pos_bias()  # (1, heads, n + h*w, n + h*w) on the full grid
            bias = bias[:, :, _with_prefix(q_keep, n)][:, :, :, _with_prefix(k_keep, n)]
        dropout = attn.attn_drop.p if self.training else 0.0
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=dropout, scale=attn.scale
        )  # (B, heads, L_q, head_dim)
        out = out.transpose(1, 2).flatten(2)
        if hasattr(attn, "norm"):  # ViT and EVA: scale norm (often Identity)
            out = attn.norm(out)
        if getattr(attn, "gate", None) is not None:  # gated EVA attention
            out = out * attn.gate(y_q).sigmoid()
        return attn.proj_drop(attn.proj(out))


_PRE_NORM = (Block, EvaBlock, BeitBlock)  # the block layouts ShrunkViTBackbone._block follows


def _projections(attn: nn.Module) -> tuple[tuple[Tensor, ...], tuple[Tensor | None, ...]]:
    """(W_q, W_k, W_v) and their biases of a timm attention, fused or not."""
    if getattr(attn, "qkv", None) is None:  # EVA with separate projections
        layers = (attn.q_proj, attn.k_proj, attn.v_proj)
        return tuple(p.weight for p in layers), tuple(p.bias for p in layers)
    weights = attn.qkv.weight.chunk(3)
    if attn.qkv.bias is not None:
        return weights, attn.qkv.bias.chunk(3)
    if getattr(attn, "q_bias", None) is not None:  # EVA and BEiT: k_bias is a zero buffer
        return weights, (attn.q_bias, attn.k_bias, attn.v_bias)
    return weights, (None, None, None)


def _layer_scale(block: nn.Module, which: int, x: Tensor) -> Tensor:
    """timm's layer scale of residual branch `which` (1: attention, 2: MLP): ViT's `ls1` /
    `ls2` modules, EVA's and BEiT's `gamma_1` / `gamma_2` vectors, or none."""
    scale = getattr(block, f"ls{which}", None)
    if scale is not None:
        return scale(x)
    gamma = getattr(block, f"gamma_{which}", None)
    return x if gamma is None else gamma * x


def _rotate(x: Tensor, rope: Tensor, prefix: int, half: bool) -> Tensor:
    """RoPE rows `rope` (L, D) applied to the patch tokens of (B, heads, prefix + L, hd)."""
    return torch.cat([x[:, :, :prefix], apply_rot_embed_cat(x[:, :, prefix:], rope, half=half)], 2)


def _every_other(grid: tuple[int, int], device: torch.device) -> Tensor:
    """The places (row * w + column) of every other row and column of an h x w grid."""
    h, w = grid
    rows = torch.arange(0, h, 2, device=device)
    columns = torch.arange(0, w, 2, device=device)
    return (rows[:, None] * w + columns[None, :]).flatten()


def _with_prefix(keep: Tensor | None, prefix: int) -> Tensor | slice:
    """Sequence positions of the prefix tokens and the patch tokens at places `keep`."""
    if keep is None:
        return slice(None)
    return torch.cat([torch.arange(prefix, device=keep.device), keep + prefix])


def _subsample(tokens: Tensor, grid: tuple[int, int], prefix: int = 0) -> Tensor:
    """Nearest 2x2 down-sampling of (B, n + h*w, C) tokens on their grid: every other row
    and column; the n prefix tokens stay as they are."""
    B, _, C = tokens.shape
    small = tokens[:, prefix:].reshape(B, *grid, C)[:, ::2, ::2].reshape(B, -1, C)
    return torch.cat([tokens[:, :prefix], small], dim=1) if prefix else small
