"""A MaskFormer head: an FPN pixel decoder and a DETR decoder of queries; dot-product masks.

The pixel decoder merges the inputs top-down (deepest first, nearest upsampling, GroupNorm)
into per-pixel embeddings at the shallowest input's resolution. Queries read the deepest input
through a DETR decoder (post-norm, sine positions on the keys); every decoder layer's output
gives class logits and, through an MLP, a mask embedding whose dot product with the per-pixel
embeddings is the mask. With one query per class it trains with the ATM loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.modeling.output import MaskPrediction, SegOutput

# References: MaskFormer (Cheng et al., NeurIPS 2021) Sec. 3.3 and its release
# (heads/pixel_decoder.py BasePixelDecoder, transformer_predictor.py; configs: 256 channels,
# GN, 6 decoder layers, 8 heads, FFN 2048, dropout 0.1, deep supervision, 3-layer mask MLP);
# DETR (Carion et al., ECCV 2020) for the decoder layer and the sine position encoding.


def sine_positions(h: int, w: int, dim: int, *, device: torch.device) -> Tensor:
    """(h*w, dim) DETR sine encoding of normalised (y, x) in (0, 2*pi], half the channels each."""
    steps = dim // 2
    y = torch.arange(1, h + 1, device=device, dtype=torch.float32) / h * 2 * math.pi
    x = torch.arange(1, w + 1, device=device, dtype=torch.float32) / w * 2 * math.pi
    freq = 10000 ** (2 * (torch.arange(steps, device=device) // 2) / steps)  # (steps,)

    def encode(values: Tensor) -> Tensor:  # (n,) -> (n, steps), sin/cos interleaved
        angles = values[:, None] / freq
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)

    pos_y = encode(y)[:, None].expand(h, w, steps)
    pos_x = encode(x)[None].expand(h, w, steps)
    return torch.cat([pos_y, pos_x], dim=-1).flatten(0, 1)


class PixelDecoder(nn.Module):
    """MaskFormer's FPN: 3x3 on the deepest input; lateral 1x1 + top-down sum + 3x3 on the rest.

    Arguments:
        in_dims: channels of each input, shallowest first.
        dim: FPN channels (256).
        mask_dim: per-pixel embedding channels (256).
    """

    def __init__(self, *, in_dims: tuple[int, ...], dim: int = 256, mask_dim: int = 256) -> None:
        super().__init__()

        def conv(in_dim: int, kernel: int, act: bool) -> nn.Sequential:
            layers = [nn.Conv2d(in_dim, dim, kernel, padding=kernel // 2, bias=False)]
            layers.append(nn.GroupNorm(32, dim))
            return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)

        self.lateral = nn.ModuleList(conv(c, 1, act=False) for c in in_dims[:-1])
        self.output = nn.ModuleList(conv(dim, 3, act=True) for _ in in_dims[:-1])
        self.top = conv(in_dims[-1], 3, act=True)
        self.mask_features = nn.Conv2d(dim, mask_dim, 3, padding=1)

    def forward(self, features: list[Tensor]) -> Tensor:
        y = self.top(features[-1])
        for i in range(len(features) - 2, -1, -1):  # top-down, as FPN: nearest upsampling
            x = self.lateral[i](features[i])
            y = self.output[i](x + F.interpolate(y, size=x.shape[-2:], mode="nearest"))
        return self.mask_features(y)  # (B, mask_dim, h0, w0)


class Attention(nn.Module):
    """Multi-head attention whose keys and values come from different inputs (DETR adds the
    positions to the queries and keys only)."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """mask: optional bool (B, 1, N, L), True where a query may attend (Mask2Former)."""

        def heads(x: Tensor) -> Tensor:  # (B, N, D) -> (B, h, N, D/h)
            return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        q, k, v = heads(self.q(query)), heads(self.k(key)), heads(self.v(value))
        dropout = self.dropout * self.training
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.proj(out.transpose(1, 2).flatten(2))


class DETRDecoderLayer(nn.Module):
    """Post-norm: self-attention, cross-attention to the memory, ReLU FFN; dropout after each."""

    def __init__(self, *, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim=dim, num_heads=num_heads, dropout=dropout)
        self.cross_attn = Attention(dim=dim, num_heads=num_heads, dropout=dropout)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        q = x + query_pos
        x = self.norms[0](x + self.dropout(self.self_attn(q, q, x)))
        x = self.norms[1](x + self.dropout(self.cross_attn(x + query_pos, memory + pos, memory)))
        return self.norms[2](x + self.dropout(self.ffn(x)))


class MaskFormerHead(nn.Module):
    """FPN pixel decoder + DETR query decoder; one (class, mask) prediction per decoder layer.

    Arguments:
        in_dims: channels of each input map, shallowest first; queries read the deepest.
        num_classes: K; class logits have K+1 entries ("no object" last).
        num_queries: queries (K for the ATM loss: query i stands for class i).
        dim: pixel-decoder and query width (256).
        num_heads, num_layers, ffn_dim, dropout: the DETR decoder (8, 6, 2048, 0.1).
    """

    def __init__(
        self,
        *,
        in_dims: tuple[int, ...],
        num_classes: int,
        num_queries: int,
        dim: int = 256,
        num_heads: int = 8,
        num_layers: int = 6,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.pixel_decoder = PixelDecoder(in_dims=in_dims, dim=dim, mask_dim=dim)
        self.input_proj = nn.Conv2d(in_dims[-1], dim, 1) if in_dims[-1] != dim else nn.Identity()
        self.query_pos = nn.Embedding(num_queries, dim)
        self.layers = nn.ModuleList(
            DETRDecoderLayer(dim=dim, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)  # shared by every layer's output (DETR's decoder norm)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)
        )

    def forward(self, features: list[Tensor]) -> SegOutput:
        pixel_embed = self.pixel_decoder(features)  # (B, D, h0, w0)
        deepest = self.input_proj(features[-1])  # (B, D, h, w)
        B, D, h, w = deepest.shape
        memory = deepest.flatten(2).transpose(1, 2)  # (B, h*w, D)
        pos = sine_positions(h, w, D, device=memory.device).to(memory.dtype)
        query_pos = self.query_pos.weight.expand(B, -1, -1)  # (B, Q, D)
        x = torch.zeros_like(query_pos)  # DETR starts from empty content
        preds = []
        for layer in self.layers:
            x = layer(x, query_pos, memory, pos)
            out = self.norm(x)
            masks = torch.einsum("bqd,bdhw->bqhw", self.mask_embed(out), pixel_embed)
            preds.append(MaskPrediction(self.class_embed(out), masks))
        return SegOutput(preds[-1].class_logits, preds[-1].mask_logits, aux=preds[:-1])
