"""Backbone sizes as plain data: what a variant is built from, readable without torch.

`segvit variants` lists the variant table from these alone, so it answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# References: Dosovitskiy et al. 2021 (ViT); Steiner et al. 2021 (AugReg weights).

QDMode = Literal["q_nearest", "qkv_nearest", "q_conv"]


@dataclass(frozen=True)
class Normalization:
    """The per-channel mean and std (RGB, in 0..255 units) that a backbone's weights expect.

    It belongs to the weights, not to the data: AugReg's JAX-trained ViTs were trained on
    (x - 127.5) / 127.5, the ImageNet-trained PyTorch models (Swin, DeiT, ...) on the ImageNet
    statistics. Training, evaluation, prediction and export all read it from the model's spec,
    and a checkpoint records it.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"expected 3 means and 3 positive stds, got {self}")

    @classmethod
    def from_unit(cls, mean: tuple[float, ...], std: tuple[float, ...]) -> Normalization:
        """From timm's pretrained config, whose mean/std are in 0..1 units."""
        return cls(
            tuple(round(m * 255, 6) for m in mean),  # type: ignore[arg-type]
            tuple(round(s * 255, 6) for s in std),  # type: ignore[arg-type]
        )


# References: timm's pretrained configs (IMAGENET_DEFAULT_MEAN/STD, the AugReg ViTs' 0.5/0.5);
# mmsegmentation's Swin configs (img_norm_cfg mean 123.675/116.28/103.53, std 58.395/57.12/57.375).
AUGREG_NORM = Normalization((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
IMAGENET_NORM = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


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
    patch_size: int = 16  # pixels a token covers; a crop must be a multiple of it
    norm: Normalization = AUGREG_NORM  # what the pretrained weights expect
    family: str = "augreg"  # segvit.modeling.families key; "augreg": the release's ViT path
    # (no class token, mmseg's position resize); any other: timm's own model, tapped as it is

    @property
    def hub_name(self) -> str:
        return f"{self.timm_name}.{self.pretrained_tag}"

    @property
    def pads(self) -> bool:
        """Inputs are padded to a multiple of the patch (and outputs cropped back); the
        release's AugReg path takes multiples of 16 only, as the release does."""
        return self.family != "augreg"


VIT_B = ViTSpec("vit_base_patch16_384", "augreg_in21k_ft_in1k", 768, 12, 12, 0.1, "ViT-B/16")
VIT_L = ViTSpec("vit_large_patch16_384", "augreg_in21k_ft_in1k", 1024, 24, 16, 0.3, "ViT-L/16")
# The layers SegViT's cascade head taps (0-based; the release's layers 6/8/12 and 8/16/24).
SEGVIT_TAPS_B = (5, 7, 11)
SEGVIT_TAPS_L = (7, 15, 23)


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
    patch_size: int = 4  # pixels a stage-1 token covers
    norm: Normalization = IMAGENET_NORM  # ImageNet-1k weights (mmseg's Swin configs)

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
