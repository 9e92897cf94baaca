"""DPT: reassemble four ViT layers into a 1/4-1/32 pyramid, fuse it bottom-up to 1/2.

Reassemble: each tap's tokens are concatenated with its class token and projected back to C
("project" readout), then a 1x1 conv sets the level's width and a resampling layer its
stride (4x and 2x transposed convs, identity, a stride-2 conv). A 3x3 conv brings every level
to 256 channels; fusion blocks (residual conv units, 2x upsampling) merge them from the
deepest up; a 3x3 conv and a 1x1 classifier give per-pixel logits at 1/2 of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.modeling.output import SegOutput
from segvit.modeling.peers.layers import conv_norm_act

# References: DPT (Ranftl et al., ICCV 2021) Sec. 3 and Fig. 1 (Reassemble, Fusion, readout
# "project"); mmsegmentation decode_heads/dpt_head.py and configs/_base_/models/dpt_vit-b16.py
# (ViT-B taps 3/6/9/12, widths [96, 192, 384, 768], 256 channels, BN, classifier dropout 0.1);
# DPT-Large in the DPT release: taps 6/12/18/24, widths [256, 512, 1024, 1024].


class Reassemble(nn.Module):
    """Readout projection, 1x1 conv to the level width, resampling to strides 4, 8, 16, 32."""

    def __init__(self, *, in_dim: int, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.readout = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * in_dim, in_dim), nn.GELU()) for _ in widths
        )
        self.project = nn.ModuleList(nn.Conv2d(in_dim, width, 1) for width in widths)
        self.resample = nn.ModuleList(
            [
                nn.ConvTranspose2d(widths[0], widths[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(widths[1], widths[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(widths[3], widths[3], kernel_size=3, stride=2, padding=1),
            ]
        )

    def forward(self, maps: list[Tensor], class_tokens: list[Tensor]) -> list[Tensor]:
        out = []
        for i, (x, cls) in enumerate(zip(maps, class_tokens, strict=True)):
            B, C, h, w = x.shape
            tokens = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
            readout = cls.flatten(1)[:, None].expand_as(tokens)  # (B, h*w, C)
            tokens = self.readout[i](torch.cat([tokens, readout], dim=-1))
            x = tokens.transpose(1, 2).reshape(B, C, h, w)
            out.append(self.resample[i](self.project[i](x)))
        return out


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: (ReLU -> 3x3 conv -> BN) twice, plus the input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class FusionBlock(nn.Module):
    """Add the refined skip level (if any), refine, upsample 2x, 1x1 conv."""

    def __init__(self, dim: int, *, has_skip: bool) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(dim) if has_skip else None
        self.unit = ResidualConvUnit(dim)
        self.project = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.skip_unit is not None and skip is not None:
            if skip.shape[-2:] != x.shape[-2:]:  # odd grids: the 1/32 level rounded up
                skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.project(x)


class DPTHead(nn.Module):
    """DPT on four taps (shallowest first) and their class tokens; per-pixel logits at 1/2.

    Arguments:
        in_dim: backbone width C.
        num_classes: K.
        widths: reassembled channels at strides 4, 8, 16, 32.
        dim: fusion channels (256).
        dropout: before the classifier (mmseg's default 0.1).
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        widths: tuple[int, int, int, int],
        dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.reassemble = Reassemble(in_dim=in_dim, widths=widths)
        self.convs = nn.ModuleList(nn.Conv2d(w, dim, 3, padding=1, bias=False) for w in widths)
        self.fusion = nn.ModuleList(FusionBlock(dim, has_skip=i > 0) for i in range(len(widths)))
        self.project = conv_norm_act(dim, dim, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(dim, num_classes, 1)

    def forward(self, features: list[Tensor]) -> SegOutput:
        n = len(self.convs)
        maps, class_tokens = features[:n], features[n:]  # the backbone appends the class tokens
        levels = [
            conv(x) for x, conv in zip(self.reassemble(maps, class_tokens), self.convs, strict=True)
        ]
        out = self.fusion[0](levels[-1])  # 1/32 -> 1/16
        for block, skip in zip(self.fusion[1:], reversed(levels[:-1]), strict=True):
            out = block(out, skip)  # -> 1/8, 1/4, 1/2
        logits = self.classifier(self.dropout(self.project(out)))  # (B, K, H/2, W/2)
        return SegOutput(class_logits=None, mask_logits=logits)
