"""The transformer decoder behind every SegViT head, with the ATM cross-attention.

One implementation serves the cascade ATM head, the single-input ATM head, the ATM of the QU
head and QU's own standard decoders: a layer either returns the similarity map of its
cross-attention (Attention-to-Mask) or runs the fused kernel and returns none.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

# References: Vaswani et al. 2017 (post-norm decoder layer); SegViT (Zhang et al., NeurIPS
# 2022) Eq. 2-3: the pre-softmax similarity QK^T / sqrt(d) is the mask, sigmoid per pixel.

MaskLayers = Literal["none", "last", "every"]


class Attention(nn.Module):
    """Multi-head attention with separate q, k, v projections.

    With `return_similarity` it also returns the scaled pre-softmax similarity QK^T * d^-0.5
    averaged over heads, shape (B, N, L): the ATM mask logits. Otherwise it runs the fused
    `scaled_dot_product_attention` kernel.
    """

    def __init__(self, *, dim: int, num_heads: int, attn_drop: float = 0.1) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, queries: Tensor, memory: Tensor, *, return_similarity: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        q = self.q(queries).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, h, N, d)
        k = self.k(memory).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, h, L, d)
        v = self.v(memory).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, h, L, d)
        dropout = self.attn_drop if self.training else 0.0
        if return_similarity:
            similarity = (q @ k.transpose(-2, -1)) * self.scale  # (B, h, N, L)
            weights = F.dropout(similarity.softmax(dim=-1), dropout, self.training)
            out = weights @ v
            similarity = similarity.mean(dim=1)  # (B, N, L)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
            similarity = None
        return self.proj(out.transpose(1, 2).flatten(2)), similarity  # (B, N, C)


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: self-attention, cross-attention, ReLU FFN (4x), dropout 0.1."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = Attention(dim=dim, num_heads=num_heads, attn_drop=dropout)
        self.cross_attn = Attention(dim=dim, num_heads=num_heads, attn_drop=dropout)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, queries: Tensor, memory: Tensor, *, return_similarity: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        x = self.norm1(queries + self.dropout(self.self_attn(queries, queries)[0]))
        attended, similarity = self.cross_attn(x, memory, return_similarity=return_similarity)
        x = self.norm2(x + self.dropout(attended))
        x = self.norm3(x + self.dropout(self.ffn(x)))
        return x, similarity  # (B, N, C), (B, N, L) or None


class Decoder(nn.Module):
    """A stack of decoder layers; `mask_layers` says which layers return their similarity."""

    def __init__(self, *, dim: int, num_heads: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(dim=dim, num_heads=num_heads) for _ in range(num_layers)
        )

    def forward(
        self, queries: Tensor, memory: Tensor, *, mask_layers: MaskLayers = "none"
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Every layer's (queries (B, N, C), similarity (B, N, L) or None)."""
        outputs = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            wanted = mask_layers == "every" or (mask_layers == "last" and i == last)
            queries, similarity = layer(queries, memory, return_similarity=wanted)
            outputs.append((queries, similarity))
        return outputs
