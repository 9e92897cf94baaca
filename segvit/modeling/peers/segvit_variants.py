"""SegViT heads beside the main ones: dot-product masks (Table 9), per-stage widths (Table 6).

DotProductATMHead keeps SegViT's token merge (class queries read the tapped layers deepest
first through the ATM decoders, masks summed over stages) but, like MaskFormer, makes each
stage's mask from the dot product of a query embedding and the stage's projected tokens
instead of the cross-attention similarity ("Ours-Variant 2" of Table 9).

StagewiseATMHead is the ATM cascade on a hierarchical backbone whose stages differ in width:
each stage has its own Linear + LayerNorm projection to the decoder width, then the ATM head
runs unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segvit.modeling.heads import ATMHead
from segvit.modeling.output import SegOutput

# References: SegViT (Zhang et al., NeurIPS 2022) Sec. 3.2, Appendix A.3 / Table 9 ("dot
# product loss as in DETR and MaskFormer") and Table 6 (Swin-Tiny); MaskFormer (Cheng et al.
# 2021) for the 3-layer mask-embedding MLP.


def _tokens(feature: Tensor) -> Tensor:
    return feature.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)


class DotProductATMHead(ATMHead):
    """The ATM cascade with masks = MLP(query) . projected token at each stage's last layer.

    Arguments: as ATMHead (mask_layers is fixed: one mask per stage, as the cascade).
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_inputs: int,
        num_classes: int,
        dim: int,
        num_heads: int,
        num_layers: int = 3,
    ) -> None:
        super().__init__(
            in_dim=in_dim,
            num_inputs=num_inputs,
            num_classes=num_classes,
            dim=dim,
            num_heads=num_heads,
            num_layers=num_layers,
            mask_layers="none",  # no similarity maps: every layer runs the fused kernel
        )
        self.mask_embed = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)
        )

    def forward(self, features: list[Tensor]) -> SegOutput:
        B = features[0].shape[0]
        queries = self.queries.weight.expand(B, -1, -1)  # (B, K, D)
        stage_queries, stage_maps = [], []
        for feature, proj, decoder in zip(
            reversed(features), self.input_proj, self.decoders, strict=True
        ):
            tokens = proj(_tokens(feature))  # (B, L, D)
            queries = decoder(queries, tokens)[-1][0]
            masks = torch.einsum("bkd,bld->bkl", self.mask_embed(queries), tokens)
            stage_queries.append(queries)
            stage_maps.append(masks.unflatten(2, feature.shape[-2:]))  # (B, K, h, w)
        return self._predictions(stage_queries, stage_maps)


class StagewiseATMHead(nn.Module):
    """Per-stage Linear(C_i -> D) + LayerNorm, then the ATM cascade on the projected maps.

    Arguments:
        in_dims: channels of each input stage, shallowest first.
        num_classes, dim, num_heads, num_layers: as ATMHead.
    """

    def __init__(
        self,
        *,
        in_dims: tuple[int, ...],
        num_classes: int,
        dim: int,
        num_heads: int,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Linear(c, dim), nn.LayerNorm(dim)) for c in in_dims
        )
        self.atm = ATMHead(
            in_dim=dim,
            num_inputs=len(in_dims),
            num_classes=num_classes,
            dim=dim,
            num_heads=num_heads,
            num_layers=num_layers,
            project=False,
        )

    def forward(self, features: list[Tensor]) -> SegOutput:
        projected = [
            proj(_tokens(x)).transpose(1, 2).unflatten(2, x.shape[-2:])  # (B, D, h, w)
            for x, proj in zip(features, self.input_proj, strict=True)
        ]
        return self.atm(projected)
