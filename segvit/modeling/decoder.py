"""The transformer decoder behind every SegViT head, with the ATM cross-attention.

One implementation serves the cascade ATM head, the single-input ATM head, the ATM of the QU
head and QU's own standard decoders: a layer either returns the similarity map of its
cross-attention (Attention-to-Mask) or runs the fused kernel and returns none.

Initialisation follows the release (an nn.TransformerDecoder of TPN_DecoderLayer, then the
head's `init_weights`): every Linear truncated normal std 0.02 with bias 0, every LayerNorm
1 / 0; the attentions the release builds as nn.MultiheadAttention (every self-attention, and
the cross-attention of QU's standard decoders) keep torch's xavier-uniform draw over the
packed (3D, D) in-projection with bias 0.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# References: Vaswani et al. 2017 (post-norm decoder layer); SegViT (Zhang et al., NeurIPS
# 2022) Eq. 2-3: the pre-softmax similarity QK^T / sqrt(d) is the mask, sigmoid per pixel;
# the SegViT release (atm_head.py, tpn_atm_head.py) and torch's nn.MultiheadAttention and
# nn.TransformerDecoder for the initialisation.

MaskLayers = Literal["none", "last", "every"]


@torch.no_grad()
def init_linear(layer: nn.Linear) -> None:
    """The release's Linear init: truncated normal std 0.02 (cut at +-2), bias 0."""
    nn.init.trunc_normal_(layer.weight, std=0.02)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


@torch.no_grad()
def init_release(modules: list[nn.Module]) -> None:
    """The release's head init on every Linear (`init_linear`) and LayerNorm (1 / 0) inside
    `modules`; other parameters are left as they are."""
    for root in modules:
        for module in root.modules():
            if isinstance(module, nn.Linear):
                init_linear(module)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


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

    @torch.no_grad()
    def set_in_projection(self, packed: Tensor) -> None:
        """Load a packed (3D, D) in-projection [q; k; v] as nn.MultiheadAttention holds it;
        biases 0, as its `_reset_parameters` leaves them."""
        for linear, weight in zip((self.q, self.k, self.v), packed.chunk(3), strict=True):
            linear.weight.copy_(weight)
            nn.init.zeros_(linear.bias)

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
    """A stack of decoder layers; `mask_layers` says which layers return their similarity.

    Arguments:
        dim, num_heads: width and attention heads.
        num_layers: decoder layers.
        packed_cross_attn: the cross-attention is initialised as the release's
            nn.MultiheadAttention (QU's standard decoders); False: as the ATM's separate
            q/k/v Linear layers (truncated normal).
    """

    def __init__(
        self, *, dim: int, num_heads: int, num_layers: int, packed_cross_attn: bool = False
    ) -> None:
        super().__init__()
        self.packed_cross_attn = packed_cross_attn
        self.layers = nn.ModuleList(
            DecoderLayer(dim=dim, num_heads=num_heads) for _ in range(num_layers)
        )
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        dim = self.layers[0].norm1.normalized_shape[0]
        packed_roles = ["self_attn"] + (["cross_attn"] if self.packed_cross_attn else [])
        # nn.TransformerDecoder deep-copies one layer num_layers times and the head's
        # init_weights leaves the packed in-projections alone: every layer of a decoder
        # starts from the same xavier draw (the Linear layers are redrawn per layer).
        packed = {role: nn.init.xavier_uniform_(torch.empty(3 * dim, dim)) for role in packed_roles}
        init_release([self.layers])
        for layer in self.layers:
            for role, weight in packed.items():
                getattr(layer, role).set_in_projection(weight)

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
