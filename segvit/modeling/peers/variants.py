"""The comparison rows of the paper as (backbone, head) builders, and their table.

Every builder takes (spec, num_classes, crop) and returns (backbone, head); the backbone
returns feature maps (B, C, h, w), shallowest first, and the head a SegOutput. PEER_VARIANTS
names each row: (description, backbone spec, builder with its options bound, loss kind).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from segvit.criteria import ATMCriterion, Criterion, PixelCECriterion
from segvit.modeling.specs import SEGVIT_TAPS_B, SWIN_T, VIT_B, VIT_L, SwinSpec, ViTSpec

# The builders import the modules that pull in torch when they run, so that the variant table
# (segvit.modeling.variants, `segvit variants`) reads without torch.

# References: the mmsegmentation configs of SETR-MLA, Segmenter, DPT and ViT-UperNet and the
# MaskFormer release (see each head's module); SegViT (Zhang et al., NeurIPS 2022) Tables 1,
# 3, 6 and 9 for the rows. docs/peers.md gives every choice the paper leaves open.

Parts = "tuple[nn.Module, nn.Module]"  # (backbone, head)

TAPS_4_B = (2, 5, 8, 11)  # layers 3/6/9/12: SETR-MLA (DeiT-B), DPT-B, ViT-B UperNet
TAPS_4_L = (5, 11, 17, 23)  # layers 6/12/18/24: SETR-MLA, DPT-L
DPT_WIDTHS_B = (96, 192, 384, 768)
DPT_WIDTHS_L = (256, 512, 1024, 1024)
# mmseg's SETR-MLA and UperNet configs weight each auxiliary head's cross-entropy 0.4.
AUX_04 = partial(PixelCECriterion, aux_weight=0.4)


def build_setr_mla(spec: ViTSpec, num_classes: int, crop: int, *, taps: tuple[int, ...]) -> Parts:
    """SETR-MLA: MLA neck and head on four layers (no class token), per-pixel logits."""
    from segvit.modeling.backbone import ViTBackbone
    from segvit.modeling.peers.setr_mla import SETRMLAHead

    backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=taps)
    head = SETRMLAHead(in_dim=spec.dim, num_inputs=len(taps), num_classes=num_classes)
    return backbone, head


def build_segmenter(spec: ViTSpec, num_classes: int, crop: int) -> Parts:
    """Segmenter: class-token ViT with final norm; 2-layer mask transformer at its width."""
    from segvit.modeling.peers.layers import ClassTokenViTBackbone
    from segvit.modeling.peers.segmenter import SegmenterMaskHead

    backbone = ClassTokenViTBackbone(
        spec=spec, img_size=crop, out_indices=(spec.depth - 1,), final_norm=True
    )
    head = SegmenterMaskHead(
        in_dim=spec.dim, num_classes=num_classes, dim=spec.dim, num_heads=spec.heads
    )
    return backbone, head


def build_dpt(
    spec: ViTSpec,
    num_classes: int,
    crop: int,
    *,
    taps: tuple[int, ...],
    widths: tuple[int, int, int, int],
) -> Parts:
    """DPT: class-token ViT (its readout projects the class token), reassemble and fusion."""
    from segvit.modeling.peers.dpt import DPTHead
    from segvit.modeling.peers.layers import ClassTokenViTBackbone

    backbone = ClassTokenViTBackbone(
        spec=spec, img_size=crop, out_indices=taps, return_class_tokens=True
    )
    return backbone, DPTHead(in_dim=spec.dim, num_classes=num_classes, widths=widths)


def build_upernet(spec: ViTSpec, num_classes: int, crop: int, *, taps: tuple[int, ...]) -> Parts:
    """ViT-UperNet: class-token ViT, multi-level neck (4x, 2x, 1x, 0.5x), UPer head."""
    from segvit.modeling.peers.layers import ClassTokenViTBackbone
    from segvit.modeling.peers.upernet import UperHead

    backbone = ClassTokenViTBackbone(spec=spec, img_size=crop, out_indices=taps)
    return backbone, UperHead(in_dim=spec.dim, num_classes=num_classes)


def build_maskformer(spec: ViTSpec, num_classes: int, crop: int, *, taps: tuple[int, ...]) -> Parts:
    """MaskFormer-style (Table 9): FPN pixel decoder over the taps at 1/16, one query a class."""
    from segvit.modeling.backbone import ViTBackbone
    from segvit.modeling.peers.maskformer import MaskFormerHead

    backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=taps)
    head = MaskFormerHead(
        in_dims=(spec.dim,) * len(taps), num_classes=num_classes, num_queries=num_classes
    )
    return backbone, head


def build_maskformer_swin(
    spec: SwinSpec, num_classes: int, crop: int, *, num_queries: int | None = None
) -> Parts:
    """MaskFormer on Swin (Table 6): FPN over the four stages, masks at 1/4.

    num_queries: None gives one query per class, so the ATM loss trains it; MaskFormer itself
    uses 100 queries with bipartite matching (a loss this project does not have).
    """
    from segvit.modeling.peers.maskformer import MaskFormerHead
    from segvit.modeling.swin import SwinBackbone

    backbone = SwinBackbone(spec=spec, img_size=crop)
    head = MaskFormerHead(
        in_dims=backbone.out_dims,
        num_classes=num_classes,
        num_queries=num_queries or num_classes,
    )
    return backbone, head


def build_mask2former_swin(
    spec: SwinSpec, num_classes: int, crop: int, *, num_queries: int | None = None
) -> Parts:
    """Mask2Former on Swin (Table 6): deformable pixel decoder, masked-attention decoder.

    num_queries: None gives one query per class (the ATM loss trains it); Mask2Former uses 100.
    """
    from segvit.modeling.peers.mask2former import Mask2FormerHead
    from segvit.modeling.swin import SwinBackbone

    backbone = SwinBackbone(spec=spec, img_size=crop)
    head = Mask2FormerHead(
        in_dims=backbone.out_dims,
        num_classes=num_classes,
        num_queries=num_queries or num_classes,
    )
    return backbone, head


def build_segvit_dot(spec: ViTSpec, num_classes: int, crop: int, *, taps: tuple[int, ...]) -> Parts:
    """SegViT variant 2 (Table 9): the ATM cascade's token merge with dot-product masks."""
    from segvit.modeling.backbone import ViTBackbone
    from segvit.modeling.peers.segvit_variants import DotProductATMHead

    backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=taps)
    head = DotProductATMHead(
        in_dim=spec.dim,
        num_inputs=len(taps),
        num_classes=num_classes,
        dim=spec.dim // 2,
        num_heads=spec.heads,
    )
    return backbone, head


def build_segvit_swin(
    spec: SwinSpec,
    num_classes: int,
    crop: int,
    *,
    stages: tuple[int, ...],
    dim: int,
    num_heads: int,
) -> Parts:
    """SegViT on Swin (Table 6): the ATM cascade over Swin stages, one projection each."""
    from segvit.modeling.peers.segvit_variants import StagewiseATMHead
    from segvit.modeling.swin import SwinBackbone

    backbone = SwinBackbone(spec=spec, img_size=crop, out_indices=stages)
    head = StagewiseATMHead(
        in_dims=backbone.out_dims, num_classes=num_classes, dim=dim, num_heads=num_heads
    )
    return backbone, head


Builder = Callable[..., Parts]  # (spec, num_classes, crop) -> (backbone, head)

# name -> (description, backbone spec, builder, criterion): the fields of a Variant.
PEER_VARIANTS: dict[str, tuple[str, ViTSpec | SwinSpec, Builder, Callable[[int], Criterion]]] = {
    # Table 1 (ADE20K) and Table 3 (PASCAL-Context): peers on a plain ViT.
    "setr_mla_b": (
        "SETR-MLA, ViT-B, MLA over layers 3/6/9/12, pixel CE (Tables 1, 9)",
        VIT_B, partial(build_setr_mla, taps=TAPS_4_B), AUX_04,
    ),
    "setr_mla_l": (
        "SETR-MLA, ViT-L, MLA over layers 6/12/18/24, pixel CE (Tables 1, 3)",
        VIT_L, partial(build_setr_mla, taps=TAPS_4_L), AUX_04,
    ),
    "segmenter_b": (
        "Segmenter, ViT-B, 2-layer mask transformer, pixel CE (Tables 1, 9)",
        VIT_B, build_segmenter, PixelCECriterion,
    ),
    "segmenter_l": (
        "Segmenter, ViT-L, 2-layer mask transformer, pixel CE (Tables 1, 3)",
        VIT_L, build_segmenter, PixelCECriterion,
    ),
    "dpt_b": (
        "DPT, ViT-B, layers 3/6/9/12, project readout, pixel CE (Table 1)",
        VIT_B, partial(build_dpt, taps=TAPS_4_B, widths=DPT_WIDTHS_B), PixelCECriterion,
    ),
    "dpt_l": (
        "DPT-Large, ViT-L, layers 6/12/18/24, project readout, pixel CE (Table 1)",
        VIT_L, partial(build_dpt, taps=TAPS_4_L, widths=DPT_WIDTHS_L), PixelCECriterion,
    ),
    "upernet_b": (
        "UperNet, ViT-B, MLN neck on layers 3/6/9/12, pixel CE (Table 1)",
        VIT_B, partial(build_upernet, taps=TAPS_4_B), AUX_04,
    ),
    "upernet_l": (
        "UperNet, ViT-L, MLN neck on layers 6/12/18/24, pixel CE (Table 1)",
        VIT_L, partial(build_upernet, taps=TAPS_4_L), AUX_04,
    ),
    # Table 9: decoders on ViT-B with their merge and loss types.
    "maskformer_b": (
        "MaskFormer-style, ViT-B, FPN over layers 6/8/12, dot-product masks, mask loss (Table 9)",
        VIT_B, partial(build_maskformer, taps=SEGVIT_TAPS_B), ATMCriterion,
    ),
    "segvit_dot_b": (
        "SegViT variant 2, ViT-B, ATM token merge over layers 6/8/12, dot-product masks (Table 9)",
        VIT_B, partial(build_segvit_dot, taps=SEGVIT_TAPS_B), ATMCriterion,
    ),
    # Table 6: a hierarchical backbone.
    "maskformer_swin_t": (
        "MaskFormer, Swin-T, FPN over the four stages, one query per class, mask loss (Table 6)",
        SWIN_T, build_maskformer_swin, ATMCriterion,
    ),
    "mask2former_swin_t": (
        "Mask2Former, Swin-T, deformable pixel decoder, masked attention, one query per class,"
        " mask loss (Table 6)",
        SWIN_T, build_mask2former_swin, ATMCriterion,
    ),
    "segvit_swin_t": (
        "SegViT, Swin-T, ATM cascade over the four stages, width 256 (Table 6)",
        SWIN_T, partial(build_segvit_swin, stages=(0, 1, 2, 3), dim=256, num_heads=8), ATMCriterion,
    ),
}  # fmt: skip
