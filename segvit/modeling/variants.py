"""The paper's models by name: one explicit table from variant names to builder calls.

`build_model("segvit_b", num_classes=150, crop=512)` gives the Table 1 ViT-B SegViT. A model
knows its class count and crop, never a dataset: the experiment spec (segvit.experiments.spec)
reads those from the dataset once and passes the numbers down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from segvit.criteria import ATMCriterion, Criterion, PixelCECriterion, SemanticCECriterion
from segvit.data.info import crop_problem
from segvit.errors import SegvitError
from segvit.modeling.peers.variants import PEER_VARIANTS
from segvit.modeling.specs import (
    SEGVIT_TAPS_B,
    SEGVIT_TAPS_L,
    VIT_B,
    VIT_L,
    BackboneSpec,
    QDMode,
    ViTSpec,
)
from segvit.modeling.specs import tiny as tiny_spec

if TYPE_CHECKING:
    from segvit.modeling.segmentor import Segmentor

# The builders import the modules that pull in torch when they run: `segvit variants` reads
# this table and must answer without importing torch (~3 s here).

# References: SegViT release configs for taps, QD positions and head widths
# (docs/architecture.md gathers them).

Parts = "tuple[nn.Module, nn.Module]"  # (backbone, head)


def cascade(spec: ViTSpec, num_classes: int, crop: int, *, taps: tuple[int, ...]) -> Parts:
    """SegViT: ATM decoders on several layers, deepest first, masks summed (Table 1)."""
    from segvit.modeling.backbone import ViTBackbone
    from segvit.modeling.heads import ATMHead

    backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=taps)
    head = ATMHead(
        in_dim=spec.dim,
        num_inputs=len(taps),
        num_classes=num_classes,
        dim=spec.dim // 2,
        num_heads=spec.heads,
    )
    return backbone, head


def single(
    spec: ViTSpec, num_classes: int, crop: int, *, tap: int, qd_index: int | None = None
) -> Parts:
    """One ATM decoder on one layer, every layer's map a mask of its own (the release's
    ATMSingleHead does not sum them); with QD: naive Shrunk."""
    from segvit.modeling.backbone import ShrunkViTBackbone, ViTBackbone
    from segvit.modeling.heads import ATMHead

    if qd_index is None:
        backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=(tap,))
    else:
        backbone = ShrunkViTBackbone(
            spec=spec, img_size=crop, out_indices=(tap,), qd_index=qd_index
        )
    head = ATMHead(
        in_dim=spec.dim,
        num_inputs=1,
        num_classes=num_classes,
        dim=spec.dim // 2,
        num_heads=spec.heads,
        mask_layers="every",
        cumulative=False,
    )
    return backbone, head


def shrunk(
    spec: ViTSpec,
    num_classes: int,
    crop: int,
    *,
    taps: tuple[int, int],
    qd_index: int,
    qd_mode: QDMode = "q_nearest",
) -> Parts:
    """SegViT Shrunk: QD inside the ViT, QU beside it, ATM on QU's 1/16 queries."""
    from segvit.modeling.backbone import ShrunkViTBackbone
    from segvit.modeling.heads import QUHead

    backbone = ShrunkViTBackbone(
        spec=spec, img_size=crop, out_indices=taps, qd_index=qd_index, qd_mode=qd_mode
    )
    head = QUHead(
        in_dim=spec.dim,
        num_inputs=len(taps),
        num_classes=num_classes,
        dim=spec.dim // 2,
        num_heads=spec.heads,
        grid=(crop // 16, crop // 16),
    )
    return backbone, head


def setr_naive(spec: ViTSpec, num_classes: int, crop: int, *, tap: int) -> Parts:
    """The SETR-naive baseline on the last layer."""
    from segvit.modeling.backbone import ViTBackbone
    from segvit.modeling.heads import SETRNaiveHead

    backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=(tap,))
    return backbone, SETRNaiveHead(in_dim=spec.dim, num_classes=num_classes)


@dataclass(frozen=True)
class Variant:
    description: str
    spec: BackboneSpec
    build: Callable[[BackboneSpec, int, int], Parts]  # (spec, num_classes, crop) -> parts
    criterion: Callable[[int], Criterion] = ATMCriterion  # num_classes -> its training loss
    name: str = ""  # its key in VARIANTS (set there)

    @property
    def large(self) -> bool:
        """A ViT-L model: datasets may train it at another crop (ADE20K: 640)."""
        return self.spec is VIT_L


VARIANTS: dict[str, Variant] = {
    # Tables 1-3: the main models.
    "segvit_b": Variant(
        "SegViT, ViT-B, ATM cascade on layers 6/8/12 (Table 1)",
        VIT_B, partial(cascade, taps=SEGVIT_TAPS_B),
    ),
    "segvit_l": Variant(
        "SegViT, ViT-L, ATM cascade on layers 8/16/24 (Tables 1-3)",
        VIT_L, partial(cascade, taps=SEGVIT_TAPS_L),
    ),
    "segvit_shrunk_l": Variant(
        "SegViT Shrunk, ViT-L, QD at layer 9, QU on layers 8/24 (Tables 1-3)",
        VIT_L, partial(shrunk, taps=(7, 23), qd_index=8),
    ),
    # Table 8 (and Tables 4, 5): ViT-B structures.
    "setr_b": Variant(
        "SETR-naive head on ViT-B layer 12, pixel cross-entropy (Tables 4, 8)",
        VIT_B, partial(setr_naive, tap=11), criterion=PixelCECriterion,
    ),
    "atm_single_b": Variant(
        "single ATM decoder on ViT-B layer 12 (Tables 4, 5, 8)",
        VIT_B, partial(single, tap=11),
    ),
    "atm_single_ce_b": Variant(
        "single ATM decoder on ViT-B layer 12 trained with pixel cross-entropy (Table 4)",
        VIT_B, partial(single, tap=11), criterion=SemanticCECriterion,
    ),
    "naive_shrunk_b": Variant(
        "naive Shrunk: QD at ViT-B layer 7, single ATM on the 1/32 output (Table 8)",
        VIT_B, partial(single, tap=11, qd_index=6),
    ),
    "segvit_shrunk_b": Variant(
        "SegViT Shrunk, ViT-B: QD at layer 7, QU on layers 6/12 (Table 8)",
        VIT_B, partial(shrunk, taps=(5, 11), qd_index=6),
    ),
    # Table 5: which layers feed the cascade.
    "segvit_b_l6_12": Variant(
        "SegViT, ViT-B, ATM cascade on layers 6/12 (Table 5)",
        VIT_B, partial(cascade, taps=(5, 11)),
    ),
    "segvit_b_l3_6_9_12": Variant(
        "SegViT, ViT-B, ATM cascade on layers 3/6/9/12 (Table 5)",
        VIT_B, partial(cascade, taps=(2, 5, 8, 11)),
    ),
    # Table 7: how QD down-samples.
    "segvit_shrunk_l_qd_conv": Variant(
        "SegViT Shrunk, ViT-L, QD by a learned stride-2 conv on Q (Table 7)",
        VIT_L, partial(shrunk, taps=(7, 23), qd_index=8, qd_mode="q_conv"),
    ),
    "segvit_shrunk_l_qd_qkv": Variant(
        "SegViT Shrunk, ViT-L, QD by nearest subsampling of Q, K and V (Table 7)",
        VIT_L, partial(shrunk, taps=(7, 23), qd_index=8, qd_mode="qkv_nearest"),
    ),
}  # fmt: skip


# The comparison rows of Tables 1, 3, 6 and 9 (segvit.modeling.peers): other methods' heads,
# built, trained and counted exactly as the SegViT rows are.
VARIANTS.update((name, Variant(*row)) for name, row in PEER_VARIANTS.items())
VARIANTS = {name: replace(variant, name=name) for name, variant in VARIANTS.items()}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise SegvitError(
            f"unknown variant {name!r}; expected one of: {', '.join(VARIANTS)}"
        ) from None


def check_crop(crop: int) -> int:
    if crop_problem(crop):
        raise SegvitError(f"--crop {crop}: {crop_problem(crop)}")
    return crop


def build_model(
    variant: str | Variant,
    *,
    num_classes: int,
    crop: int,
    tiny: bool = False,
    pretrained: str | None = None,
) -> Segmentor:
    """The model `variant` for `num_classes` classes at `crop`; pretrained backbone weights
    ("hub" or a file) when `pretrained` is set. `tiny`: width-192 ViT of the same depth."""
    from segvit.modeling.segmentor import ModelMeta, Segmentor
    from segvit.modeling.weights import load_pretrained, load_swin_pretrained

    chosen = variant if isinstance(variant, Variant) else get_variant(variant)
    check_crop(crop)
    if num_classes < 1:
        raise SegvitError(f"{chosen.name}: num_classes must be >= 1, got {num_classes}")
    spec = tiny_spec(chosen.spec) if tiny else chosen.spec
    backbone, head = chosen.build(spec, num_classes, crop)
    model = Segmentor(
        backbone=backbone, head=head, meta=ModelMeta(chosen.name, num_classes, crop, tiny)
    )
    if pretrained and hasattr(backbone, "swin"):
        load_swin_pretrained(backbone.swin, pretrained, spec)
    elif pretrained:
        load_pretrained(backbone.vit, pretrained, spec)
    return model
