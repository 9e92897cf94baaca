"""The plain-ViT families a SegViT head can sit on, as plain data: `segvit backbones` lists
them without importing torch.

A backbone is a timm model name (`vit_large_patch14_reg4_dinov2.lvd142m`); its family says
how its tokens are laid out (patch size, prefix tokens, position encoding), which layers the
head taps by default, how its inputs are normalised and under which licence its weights come.
`segvit.modeling.timm_vit.backbone_spec` resolves a name into a ViTSpec.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from segvit.errors import SegvitError
from segvit.modeling.specs import AUGREG_NORM, IMAGENET_NORM, Normalization

# References: timm 1.0 pretrained configs (model names, patch sizes, mean/std, licences);
# Steiner et al. 2021 (AugReg); Touvron et al. 2022 (DeiT III); Oquab et al. 2023 (DINOv2);
# Darcet et al. 2024 (registers); Simeoni et al. 2025 (DINOv3); Fang et al. 2023 (EVA-02);
# Peng et al. 2022 (BEiT v2); Tschannen et al. 2025 (SigLIP 2).

Position = Literal["learned", "rope", "relative bias"]

# OpenAI CLIP's statistics, which EVA-02's weights expect (timm's OPENAI_CLIP_MEAN/STD).
CLIP_NORM = Normalization.from_unit(
    (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
)


@dataclass(frozen=True)
class Family:
    """One family of plain ViTs in timm, and what the adapter needs to know about it."""

    key: str  # short name
    label: str  # human name
    example: str  # a timm name with its pretrained tag
    patterns: tuple[str, ...]  # timm names (arch.tag) of this family, shell patterns
    patch_size: int  # pixels a token covers
    prefix_tokens: int  # tokens before the patch tokens (class, registers), dropped from the maps
    position: Position  # how token positions are encoded
    norm: Normalization  # mean/std (0..255 RGB) of timm's pretrained config
    licence: str  # of the pretrained weights
    note: str = ""  # what this family does not do

    @property
    def pads(self) -> bool:
        """Crops are padded to the patch (every family but the release's AugReg path)."""
        return self.key != "augreg"


FAMILIES: tuple[Family, ...] = (
    Family(
        "augreg", "AugReg ViT (the paper's)", "vit_base_patch16_384.augreg_in21k_ft_in1k",
        ("vit_*_patch16_*.augreg*",), 16, 0, "learned",
        AUGREG_NORM, "apache-2.0",
    ),
    Family(
        "deit3", "DeiT III", "deit3_base_patch16_384.fb_in22k_ft_in1k",
        ("deit3_*",), 16, 1, "learned", IMAGENET_NORM, "apache-2.0",
    ),
    Family(
        "dinov2", "DINOv2", "vit_base_patch14_dinov2.lvd142m",
        ("vit_*_patch14_dinov2*",), 14, 1, "learned", IMAGENET_NORM, "apache-2.0",
    ),
    Family(
        "dinov2_reg", "DINOv2 with registers", "vit_large_patch14_reg4_dinov2.lvd142m",
        ("vit_*_patch14_reg4_dinov2*",), 14, 5, "learned",
        IMAGENET_NORM, "apache-2.0",
    ),
    Family(
        "dinov3", "DINOv3", "vit_base_patch16_dinov3.lvd1689m",
        ("vit_*_patch16_dinov3*",), 16, 5, "rope", IMAGENET_NORM,
        "dinov3-license (Meta's own terms)",
    ),
    Family(
        "eva02", "EVA-02", "eva02_base_patch14_448.mim_in22k_ft_in22k_in1k",
        ("eva02_*_patch14_*",), 14, 1, "rope", CLIP_NORM, "mit",
    ),
    Family(
        "beitv2", "BEiT v2", "beitv2_large_patch16_224.in1k_ft_in22k_in1k",
        ("beitv2_*",), 16, 1, "relative bias", IMAGENET_NORM, "apache-2.0",
        "whole-image inference only at the crop (bias built for its grid)",
    ),
    Family(
        "siglip2", "SigLIP 2 ViT", "vit_base_patch16_siglip_512.v2_webli",
        ("vit_*_patch16_siglip_*.v2_webli", "vit_*_patch16_siglip_*[0-9]"), 16, 0,
        "learned", AUGREG_NORM, "apache-2.0",
    ),
)  # fmt: skip


def find_family(name: str) -> Family:
    """The family of timm name `name` (with or without its tag); one line when none fits."""
    for family in FAMILIES:
        if any(fnmatchcase(name, pattern) for pattern in family.patterns):
            return family
    known = ", ".join(f"{f.label} (e.g. {f.example})" for f in FAMILIES)
    raise SegvitError(f"--backbone {name}: not a ViT family segvit supports; expected {known}")


def default_taps(depth: int) -> tuple[int, ...]:
    """The layers (0-based) a cascade reads by default: the paper's for 12 and 24 blocks
    (ViT-B 6/8/12, ViT-L 8/16/24), else a third, two thirds and the last."""
    paper = {12: (5, 7, 11), 24: (7, 15, 23)}
    if depth in paper:
        return paper[depth]
    return tuple(sorted({max(depth // 3 - 1, 0), max(2 * depth // 3 - 1, 0), depth - 1}))


def parse_layers(text: str, depth: int | None = None) -> tuple[int, ...]:
    """`--layers 8,16,24` (1-based, as the paper counts) -> 0-based indices, shallowest first."""
    try:
        layers = tuple(sorted({int(part) - 1 for part in text.split(",") if part.strip()}))
    except ValueError:
        raise SegvitError(f"--layers {text}: expected layer numbers such as 8,16,24") from None
    top = depth if depth is not None else 10**6
    if not layers or layers[0] < 0 or layers[-1] >= top:
        raise SegvitError(f"--layers {text}: expected layer numbers from 1 to {top}")
    return layers
