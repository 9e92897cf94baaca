"""ViT sizes as plain data: what a variant is built from, readable without importing torch.

`segvit variants` lists the variant table from these alone, so it answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# References: Dosovitskiy et al. 2021 (ViT); Steiner et al. 2021 (AugReg weights).

QDMode = Literal["q_nearest", "qkv_nearest", "q_conv"]


@dataclass(frozen=True)
class ViTSpec:
    """A ViT size: the timm architecture it is built from and its pretrained weights."""

    timm_name: str  # timm architecture; also names the pretrained weights on the hub
    pretrained_tag: str  # timm pretrained tag of the AugReg weights the paper starts from
    dim: int  # token width C
    depth: int  # number of transformer blocks
    heads: int  # attention heads
    drop_path: float  # stochastic depth rate of the last block (linear from 0)
    label: str  # short human name

    @property
    def hub_name(self) -> str:
        return f"{self.timm_name}.{self.pretrained_tag}"


VIT_B = ViTSpec("vit_base_patch16_384", "augreg_in21k_ft_in1k", 768, 12, 12, 0.1, "ViT-B/16")
VIT_L = ViTSpec("vit_large_patch16_384", "augreg_in21k_ft_in1k", 1024, 24, 16, 0.3, "ViT-L/16")


def tiny(spec: ViTSpec) -> ViTSpec:
    """The same depth (so every tap and QD index still applies) at width 192: tests, smoke."""
    return replace(spec, dim=192, heads=3, pretrained_tag="", label=f"{spec.label} (tiny)")
