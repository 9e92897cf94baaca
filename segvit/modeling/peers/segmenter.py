"""Segmenter's mask transformer: class embeddings and patch tokens decoded jointly.

The last layer's patch tokens are projected, K learnable class embeddings are appended, and a
few ViT blocks run over the joint sequence. Masks are the scalar products of the L2-normalised
patch and class embeddings, normalised over the classes by a LayerNorm; they are per-pixel
class scores, trained with cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from segvit.modeling.output import SegOutput

# References: Segmenter (Strudel et al., ICCV 2021) Sec. 3.2 "Mask Transformer"; mmsegmentation
# decode_heads/segmenter_mask_head.py and configs/_base_/models/segmenter_vit-b16_mask.py
# (2 layers, width and heads of the backbone, drop path 0.1, no dropout, init std 0.02).


class SegmenterMaskHead(nn.Module):
    """Mask transformer on the last tap; per-class masks (B, K, h, w) used as pixel logits.

    Arguments:
        in_dim: backbone width C.
        num_classes: K; one class embedding each.
        dim: decoder width (the backbone's in Segmenter).
        num_heads: decoder attention heads.
        num_layers: joint transformer blocks (2).
        drop_path: stochastic depth of the last block (linear from 0).
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        dim: int,
        num_heads: int,
        num_layers: int = 2,
        drop_path: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.input_proj = nn.Linear(in_dim, dim)
        self.class_embed = nn.Parameter(torch.zeros(1, num_classes, dim))
        rates = torch.linspace(0, drop_path, num_layers, device="cpu").tolist()  # not meta
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop_path=rate) for rate in rates
        )
        self.norm = nn.LayerNorm(dim)
        self.patch_proj = nn.Linear(dim, dim, bias=False)
        self.class_proj = nn.Linear(dim, dim, bias=False)
        self.mask_norm = nn.LayerNorm(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.class_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: list[Tensor]) -> SegOutput:
        feature = features[-1]
        B, _, h, w = feature.shape
        patches = self.input_proj(feature.flatten(2).transpose(1, 2))  # (B, L, D)
        x = torch.cat([patches, self.class_embed.expand(B, -1, -1)], dim=1)  # (B, L+K, D)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        patches, classes = x[:, : -self.num_classes], x[:, -self.num_classes :]
        patches = F.normalize(self.patch_proj(patches), dim=-1)  # (B, L, D), unit length
        classes = F.normalize(self.class_proj(classes), dim=-1)  # (B, K, D)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))  # (B, L, K)
        return SegOutput(class_logits=None, mask_logits=masks.transpose(1, 2).unflatten(2, (h, w)))
