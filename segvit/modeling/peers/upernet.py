"""UperNet on a plain ViT: a multi-level neck makes a pyramid, the UPer head fuses it.

The multi-level neck (MLN) projects four taps with 1x1 convs, resizes them 4x, 2x, 1x and
0.5x (strides 4, 8, 16, 32) and refines each with a 3x3 conv. The UPer head runs a pyramid
pooling module on the deepest level, an FPN top-down path over the others, concatenates all
four at 1/4 and classifies every pixel there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.modeling.output import MaskPrediction, SegOutput
from segvit.modeling.peers.layers import conv_norm_act

# References: UperNet (Xiao et al., ECCV 2018); PSPNet (Zhao et al., CVPR 2017) for the pooling
# module; mmsegmentation configs/vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py with
# configs/_base_/models/upernet_vit-b16_ln_mln.py, necks/multilevel_neck.py and
# decode_heads/uper_head.py (scales 4/2/1/0.5, no norm in the neck, 512 channels, pool scales
# 1/2/3/6, dropout 0.1; auxiliary FCN head on the 1/32 level, 256 channels, weight 0.4).


def _resize(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class MultiLevelNeck(nn.Module):
    """1x1 conv per tap, bilinear resize by `scales`, 3x3 conv; no norm, no activation."""

    def __init__(
        self, *, in_dim: int, dim: int, scales: tuple[float, ...] = (4, 2, 1, 0.5)
    ) -> None:
        super().__init__()
        self.scales = scales
        self.lateral = nn.ModuleList(nn.Conv2d(in_dim, dim, 1) for _ in scales)
        self.refine = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in scales)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        out = []
        for x, scale, lateral, refine in zip(
            features, self.scales, self.lateral, self.refine, strict=True
        ):
            x = F.interpolate(lateral(x), scale_factor=scale, mode="bilinear", align_corners=False)
            out.append(refine(x))
        return out  # strides 4, 8, 16, 32


class PyramidPooling(nn.Module):
    """Average-pool to each scale, 1x1 conv-BN-ReLU, upsample back; concatenated with input."""

    def __init__(self, *, in_dim: int, dim: int, scales: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), conv_norm_act(in_dim, dim, 1)) for s in scales
        )

    def forward(self, x: Tensor) -> Tensor:
        pooled = [_resize(branch(x), x.shape[-2:]) for branch in self.branches]
        return torch.cat([x, *pooled], dim=1)


class UperHead(nn.Module):
    """MLN neck, then the UPer head: PPM on the deepest level, FPN, fuse at 1/4.

    Arguments:
        in_dim: backbone width C (the neck keeps it).
        num_classes: K.
        dim: head channels (512).
        pool_scales: pyramid pooling output sizes.
        aux_dim: channels of the auxiliary FCN head on the deepest neck level, used in
            training only; 0 leaves it out.
        dropout: before the classifiers.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        dim: int = 512,
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
        aux_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.neck = MultiLevelNeck(in_dim=in_dim, dim=in_dim)
        self.ppm = PyramidPooling(in_dim=in_dim, dim=dim, scales=pool_scales)
        self.bottleneck = conv_norm_act(in_dim + len(pool_scales) * dim, dim, 3)
        self.lateral = nn.ModuleList(conv_norm_act(in_dim, dim, 1) for _ in range(3))
        self.fpn = nn.ModuleList(conv_norm_act(dim, dim, 3) for _ in range(3))
        self.fuse = conv_norm_act(4 * dim, dim, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(dim, num_classes, 1)
        self.aux = (
            nn.Sequential(
                conv_norm_act(in_dim, aux_dim, 3),
                nn.Dropout2d(dropout),
                nn.Conv2d(aux_dim, num_classes, 1),
            )
            if aux_dim
            else None
        )

    def forward(self, features: list[Tensor]) -> SegOutput:
        pyramid = self.neck(features)  # strides 4, 8, 16, 32
        levels = [lateral(x) for x, lateral in zip(pyramid[:3], self.lateral, strict=True)]
        levels.append(self.bottleneck(self.ppm(pyramid[3])))
        for i in range(3, 0, -1):  # top-down: each level adds the one above it
            levels[i - 1] = levels[i - 1] + _resize(levels[i], levels[i - 1].shape[-2:])
        outs = [fpn(x) for x, fpn in zip(levels[:3], self.fpn, strict=True)] + [levels[3]]
        size = outs[0].shape[-2:]
        fused = self.fuse(torch.cat([outs[0], *(_resize(x, size) for x in outs[1:])], dim=1))
        logits = self.classifier(self.dropout(fused))  # (B, K, H/4, W/4)
        aux = []
        if self.training and self.aux is not None:
            aux = [MaskPrediction(None, self.aux(pyramid[3]))]
        return SegOutput(class_logits=None, mask_logits=logits, aux=aux)
