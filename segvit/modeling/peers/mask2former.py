"""Mask2Former: a deformable-attention pixel decoder and a masked-attention query decoder.

Pixel decoder: the 1/8, 1/16 and 1/32 stages, projected to 256 channels, run through six
multi-scale deformable attention encoder layers (each token samples 4 points per head and
level around its own position); an FPN step adds the 1/4 stage and gives per-pixel
embeddings. Query decoder: nine layers visit the three scales in turn (1/32, 1/16, 1/8); each
cross-attention only sees the pixels the previous prediction's mask covers. Every prediction
(before the first layer and after each) is supervised.

The deformable sampling is the pure-PyTorch form (grid_sample) of the CUDA kernel; fvcore
counts neither, so the count is the one the authors' tools give.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.modeling.output import MaskPrediction, SegOutput
from segvit.modeling.peers.maskformer import Attention, sine_positions

# References: Mask2Former (Cheng et al., CVPR 2022) Sec. 3 and its release
# (pixel_decoder/msdeformattn.py, transformer_decoder/mask2former_transformer_decoder.py;
# configs: 6 encoder layers, FFN 1024 there, 9 decoder layers, FFN 2048, 8 heads, dropout 0,
# 100 queries); Deformable DETR (Zhu et al., ICLR 2021) for MSDeformAttn and its init.


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention: per head, level and point, a learned offset from the
    query's reference point and a weight (softmax over levels and points)."""

    def __init__(self, *, dim: int, num_heads: int, num_levels: int, num_points: int) -> None:
        super().__init__()
        self.heads, self.levels, self.points = num_heads, num_levels, num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # Offsets start on rays in the heads' directions, one step further for each point.
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.heads) * (2 * math.pi / self.heads)
        rays = torch.stack([angles.cos(), angles.sin()], -1)
        rays = rays / rays.abs().max(-1, keepdim=True).values  # (heads, 2)
        steps = torch.arange(1, self.points + 1, dtype=torch.float32)[None, None, :, None]
        bias = rays[:, None, None, :].repeat(1, self.levels, self.points, 1) * steps
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for linear in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self, query: Tensor, reference: Tensor, value: Tensor, shapes: list[tuple[int, int]]
    ) -> Tensor:
        """query (B, N, D); reference (B, N, 2) as (x, y) in [0, 1]; value (B, S, D) holding
        the levels' maps flattened one after another; returns (B, N, D)."""
        B, N, D = query.shape
        h, L, P = self.heads, self.levels, self.points
        v = self.value_proj(value).unflatten(-1, (h, -1)).permute(0, 2, 3, 1)  # (B, h, d, S)
        v = v.flatten(0, 1).split([H * W for H, W in shapes], dim=-1)  # [(B*h, d, H*W)]
        offsets = self.sampling_offsets(query).view(B, N, h, L, P, 2)
        weights = self.attention_weights(query).view(B, N, h, L * P).softmax(-1)
        weights = weights.view(B, N, h, L, P).transpose(1, 2).flatten(0, 1)  # (B*h, N, L, P)
        scale = torch.tensor([[W, H] for H, W in shapes], dtype=query.dtype, device=query.device)
        locations = reference[:, :, None, None, None] + offsets / scale[:, None]  # (B,N,h,L,P,2)
        grids = (2 * locations - 1).transpose(1, 2).flatten(0, 1)  # (B*h, N, L, P, 2) in [-1, 1]
        out = 0
        for level, (H, W) in enumerate(shapes):
            sampled = F.grid_sample(
                v[level].unflatten(-1, (H, W)),
                grids[:, :, level],
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )  # (B*h, d, N, P)
            out = out + (sampled * weights[:, None, :, level]).sum(-1)  # (B*h, d, N)
        out = out.unflatten(0, (B, h)).flatten(1, 2).transpose(1, 2)  # (B, N, D)
        return self.output_proj(out)


class EncoderLayer(nn.Module):
    """Post-norm: deformable self-attention over all levels, then a ReLU FFN."""

    def __init__(self, *, dim: int, num_heads: int, num_levels: int, ffn_dim: int) -> None:
        super().__init__()
        self.attn = MSDeformAttn(dim=dim, num_heads=num_heads, num_levels=num_levels, num_points=4)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor, reference: Tensor, shapes) -> Tensor:
        x = self.norm1(x + self.attn(x + pos, reference, x, shapes))
        return self.norm2(x + self.ffn(x))


class DeformablePixelDecoder(nn.Module):
    """Deformable encoder over the three deepest inputs, FPN step to the shallowest one.

    Arguments:
        in_dims: channels of the four inputs, shallowest (1/4) first.
        dim: width (256); also the per-pixel embedding width.
        num_layers, num_heads, ffn_dim: the deformable encoder (6, 8, 1024).
    """

    def __init__(
        self,
        *,
        in_dims: tuple[int, ...],
        dim: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        ffn_dim: int = 1024,
    ) -> None:
        super().__init__()
        deep = in_dims[1:][::-1]  # 1/32, 1/16, 1/8
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1), nn.GroupNorm(32, dim)) for c in deep
        )
        self.level_embed = nn.Parameter(torch.randn(len(deep), dim) * 0.02)
        self.layers = nn.ModuleList(
            EncoderLayer(dim=dim, num_heads=num_heads, num_levels=len(deep), ffn_dim=ffn_dim)
            for _ in range(num_layers)
        )
        self.lateral = nn.Sequential(
            nn.Conv2d(in_dims[0], dim, 1, bias=False), nn.GroupNorm(32, dim)
        )
        self.output = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.GroupNorm(32, dim), nn.ReLU()
        )
        self.mask_features = nn.Conv2d(dim, dim, 1)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Per-pixel embeddings (B, D, H/4, W/4) and the encoded 1/32, 1/16, 1/8 maps."""
        maps = [proj(x) for proj, x in zip(self.input_proj, features[1:][::-1], strict=True)]
        shapes = [tuple(m.shape[-2:]) for m in maps]
        B, D = maps[0].shape[:2]
        device = maps[0].device
        tokens = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)  # (B, S, D)
        pos = torch.cat(
            [
                sine_positions(H, W, D, device=device) + e
                for (H, W), e in zip(shapes, self.level_embed, strict=True)
            ]
        ).to(tokens.dtype)
        reference = torch.cat([_pixel_centres(H, W, device) for H, W in shapes])  # (S, 2)
        reference = reference.to(tokens.dtype).expand(B, -1, -1)
        for layer in self.layers:
            tokens = layer(tokens, pos, reference, shapes)
        encoded = [
            t.transpose(1, 2).unflatten(2, s)
            for t, s in zip(tokens.split([H * W for H, W in shapes], 1), shapes, strict=True)
        ]
        fine = self.lateral(features[0])
        up = F.interpolate(encoded[-1], size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.mask_features(self.output(fine + up)), encoded


def _pixel_centres(H: int, W: int, device: torch.device) -> Tensor:
    """(H*W, 2) normalised (x, y) centres of a map's pixels, row by row."""
    y, x = torch.meshgrid(
        (torch.arange(H, device=device) + 0.5) / H,
        (torch.arange(W, device=device) + 0.5) / W,
        indexing="ij",
    )
    return torch.stack([x.flatten(), y.flatten()], -1)


class MaskedDecoderLayer(nn.Module):
    """Post-norm: masked cross-attention, self-attention, ReLU FFN (Mask2Former's order)."""

    def __init__(self, *, dim: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.cross_attn = Attention(dim=dim, num_heads=num_heads, dropout=0.0)
        self.self_attn = Attention(dim=dim, num_heads=num_heads, dropout=0.0)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, x, query_pos, memory, pos, visible: Tensor) -> Tensor:
        attended = self.cross_attn(x + query_pos, memory + pos, memory, mask=visible)
        x = self.norms[0](x + attended)
        q = x + query_pos
        x = self.norms[1](x + self.self_attn(q, q, x))
        return self.norms[2](x + self.ffn(x))


class Mask2FormerHead(nn.Module):
    """Deformable pixel decoder + masked-attention decoder; 1 + num_layers predictions.

    Arguments:
        in_dims: channels of the four backbone stages, shallowest (1/4) first.
        num_classes: K; class logits have K+1 entries ("no object" last).
        num_queries: queries (K for the ATM loss: query i stands for class i).
        dim, num_heads, num_layers, ffn_dim: the query decoder (256, 8, 9, 2048).
    """

    def __init__(
        self,
        *,
        in_dims: tuple[int, ...],
        num_classes: int,
        num_queries: int,
        dim: int = 256,
        num_heads: int = 8,
        num_layers: int = 9,
        ffn_dim: int = 2048,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.pixel_decoder = DeformablePixelDecoder(in_dims=in_dims, dim=dim)
        self.query_feat = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        self.level_embed = nn.Embedding(3, dim)
        self.layers = nn.ModuleList(
            MaskedDecoderLayer(dim=dim, num_heads=num_heads, ffn_dim=ffn_dim)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)
        )

    def forward(self, features: list[Tensor]) -> SegOutput:
        pixel_embed, scales = self.pixel_decoder(features)  # (B, D, H/4, W/4); 1/32..1/8
        B, D = pixel_embed.shape[:2]
        memories = [
            m.flatten(2).transpose(1, 2) + e
            for m, e in zip(scales, self.level_embed.weight, strict=True)
        ]
        positions = [sine_positions(*m.shape[-2:], D, device=m.device).to(m.dtype) for m in scales]
        query_pos = self.query_pos.weight.expand(B, -1, -1)  # (B, Q, D)
        x = self.query_feat.weight.expand(B, -1, -1)
        preds, visible = self._predict(x, pixel_embed, scales[0].shape[-2:])
        for i, layer in enumerate(self.layers):
            level = i % len(scales)  # round robin: 1/32, 1/16, 1/8, 1/32, ...
            x = layer(x, query_pos, memories[level], positions[level], visible)
            pred, visible = self._predict(x, pixel_embed, scales[(i + 1) % len(scales)].shape[-2:])
            preds += pred
        return SegOutput(preds[-1].class_logits, preds[-1].mask_logits, aux=preds[:-1])

    def _predict(self, x: Tensor, pixel_embed: Tensor, size) -> tuple[list[MaskPrediction], Tensor]:
        """This layer's prediction and, for the next cross-attention, which pixels each query
        may see: those its mask, resized to the next scale, covers (all if it covers none)."""
        out = self.norm(x)
        masks = torch.einsum("bqd,bdhw->bqhw", self.mask_embed(out), pixel_embed)
        small = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        visible = (small.sigmoid().flatten(2) >= 0.5).detach()  # (B, Q, h*w)
        visible = visible | ~visible.any(-1, keepdim=True)
        return [MaskPrediction(self.class_embed(out), masks)], visible[:, None]  # (B, 1, Q, hw)
