"""SETR-MLA: multi-level feature aggregation over four ViT layers, per-pixel classification.

The neck normalises each tap, projects it to 256 channels, sums the projections top-down
(deepest first, each level adds all deeper ones) and refines every sum with a 3x3 conv. The
head turns each level into 128 channels with two 3x3 convs, upsamples it 4x, concatenates the
four and classifies every pixel at 1/4 of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.modeling.output import MaskPrediction, SegOutput
from segvit.modeling.peers.layers import conv_norm_act

# References: SETR (Zheng et al., CVPR 2021) Sec. 3.3 "Multi-Level feature Aggregation";
# mmsegmentation configs/_base_/models/setr_mla.py, necks/mla_neck.py and
# decode_heads/setr_mla_head.py for the widths (256 neck, 128 per level, LN eps 1e-6, BN,
# dropout 0) and the four auxiliary 1x1 classifiers on the neck outputs (loss weight 0.4).


class MLANeck(nn.Module):
    """Per-tap LayerNorm -> 1x1 conv; top-down cumulative sums; a 3x3 conv on each sum.

    Arguments:
        in_dim: channels of each tap.
        num_inputs: how many taps.
        dim: output channels of every level (256 in SETR).
    """

    def __init__(self, *, in_dim: int, num_inputs: int, dim: int = 256) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(in_dim, eps=1e-6) for _ in range(num_inputs))
        self.lateral = nn.ModuleList(conv_norm_act(in_dim, dim, 1) for _ in range(num_inputs))
        self.refine = nn.ModuleList(conv_norm_act(dim, dim, 3) for _ in range(num_inputs))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        laterals = []
        for x, norm, lateral in zip(features, self.norms, self.lateral, strict=True):
            x = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # LayerNorm over channels
            laterals.append(lateral(x))  # (B, dim, h, w)
        # Deepest level alone, then each shallower level plus everything deeper.
        sums, total = [], None
        for x in reversed(laterals):
            total = x if total is None else total + x
            sums.append(total)
        sums.reverse()  # shallowest first again
        return [refine(x) for x, refine in zip(sums, self.refine, strict=True)]


class SETRMLAHead(nn.Module):
    """The MLA neck and head on the taps (shallowest first); per-pixel logits at 1/4.

    Arguments:
        in_dim: backbone width C.
        num_inputs: taps (4 in SETR-MLA).
        num_classes: K.
        neck_dim: MLA neck channels (256).
        level_dim: channels per level in the head (128); the classifier sees 4x that.
        aux: in training, also return one 1x1 classifier per neck level (mmseg's auxiliary
            FCN heads, weighted 0.4 each there).
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_inputs: int,
        num_classes: int,
        neck_dim: int = 256,
        level_dim: int = 128,
        aux: bool = True,
    ) -> None:
        super().__init__()
        self.neck = MLANeck(in_dim=in_dim, num_inputs=num_inputs, dim=neck_dim)
        self.levels = nn.ModuleList(
            nn.Sequential(
                conv_norm_act(neck_dim, level_dim, 3), conv_norm_act(level_dim, level_dim, 3)
            )
            for _ in range(num_inputs)
        )
        self.classifier = nn.Conv2d(num_inputs * level_dim, num_classes, kernel_size=1)
        self.aux_classifiers = (
            nn.ModuleList(nn.Conv2d(neck_dim, num_classes, 1) for _ in range(num_inputs))
            if aux
            else None
        )

    def forward(self, features: list[Tensor]) -> SegOutput:
        levels = self.neck(features)  # [(B, 256, h, w)] at 1/16
        upsampled = [
            F.interpolate(conv(x), scale_factor=4, mode="bilinear", align_corners=False)
            for x, conv in zip(levels, self.levels, strict=True)
        ]  # [(B, 128, 4h, 4w)]
        logits = self.classifier(torch.cat(upsampled, dim=1))  # (B, K, 4h, 4w)
        aux = []
        if self.training and self.aux_classifiers is not None:
            aux = [
                MaskPrediction(None, c(x))
                for x, c in zip(levels, self.aux_classifiers, strict=True)
            ]
        return SegOutput(class_logits=None, mask_logits=logits, aux=aux)
