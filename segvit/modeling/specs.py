"""Backbone sizes as plain data: what a variant is built from, readable without torch.

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


# References: Liu et al. 2021 (Swin Transformer) for Swin-T.


@dataclass(frozen=True)
class SwinSpec:
    """A Swin size: the timm architecture, its widths and its pretrained weights."""

    timm_name: str  # timm architecture; also names the pretrained weights on the hub
    pretrained_tag: str  # timm pretrained tag ("" for none)
    embed_dim: int  # stage-1 width; stage i has embed_dim * 2**i channels
    depths: tuple[int, int, int, int]  # blocks per stage
    heads: tuple[int, int, int, int]  # attention heads per stage
    window: int  # window size in tokens
    drop_path: float  # stochastic depth rate of the last block (linear from 0)
    label: str  # short human name

    @property
    def hub_name(self) -> str:
        return f"{self.timm_name}.{self.pretrained_tag}"

    @property
    def dims(self) -> tuple[int, int, int, int]:
        return tuple(self.embed_dim * 2**i for i in range(4))  # type: ignore[return-value]


SWIN_T = SwinSpec(
    "swin_tiny_patch4_window7_224", "ms_in1k", 96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 0.3, "Swin-T"
)


def _tiny_swin(spec: SwinSpec) -> SwinSpec:
    """Width 48 and two blocks a stage (one plain, one shifted window): tests, smoke."""
    return replace(
        spec, embed_dim=48, depths=(2, 2, 2, 2), pretrained_tag="", label=f"{spec.label} (tiny)"
    )


BackboneSpec = ViTSpec | SwinSpec


def tiny(spec: BackboneSpec) -> BackboneSpec:
    """The small twin of a backbone for tests and smoke runs. A ViT keeps its depth (so every
    tap and QD index still applies) at width 192; a Swin gets width 48, two blocks a stage."""
    if isinstance(spec, SwinSpec):
        return _tiny_swin(spec)
    return replace(spec, dim=192, heads=3, pretrained_tag="", label=f"{spec.label} (tiny)")
