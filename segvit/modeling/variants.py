"""The paper's models by name: one explicit table from variant names to builder calls.

`build_model("segvit_b", num_classes=150, crop=512)` gives the Table 1 ViT-B SegViT. A model
knows its class count and crop, never a dataset: the experiment spec (segvit.experiments.spec)
reads those from the dataset once and passes the numbers down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Literal

from segvit.criteria import ATMCriterion, Criterion, PixelCECriterion, SemanticCECriterion
from segvit.data.info import crop_problem as data_crop_problem
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
    from segvit.modeling.families import Family
    from segvit.modeling.segmentor import Segmentor

# The builders import the modules that pull in torch when they run: `segvit variants` reads
# this table and must answer without importing torch (~3 s here).

# References: SegViT release configs for taps, QD positions and head widths
# (docs/architecture.md gathers them).

Parts = "tuple[nn.Module, nn.Module]"  # (backbone, head)
Structure = Literal["cascade", "single", "shrunk"]


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
        grid=(-(-crop // spec.patch_size),) * 2,  # the padded crop's token grid
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
    structure: Structure | None = None  # how it taps a ViT, so another ViT (--backbone) or
    # other layers (--layers) can take its place; None: it keeps its own backbone

    @property
    def large(self) -> bool:
        """A ViT-L model: datasets may train it at another crop (ADE20K: 640)."""
        return self.spec is VIT_L


VARIANTS: dict[str, Variant] = {
    # Tables 1-3: the main models.
    "segvit_b": Variant(
        "SegViT, ViT-B, ATM cascade on layers 6/8/12 (Table 1)",
        VIT_B, partial(cascade, taps=SEGVIT_TAPS_B), structure="cascade",
    ),
    "segvit_l": Variant(
        "SegViT, ViT-L, ATM cascade on layers 8/16/24 (Tables 1-3)",
        VIT_L, partial(cascade, taps=SEGVIT_TAPS_L), structure="cascade",
    ),
    "segvit_shrunk_l": Variant(
        "SegViT Shrunk, ViT-L, QD at layer 9, QU on layers 8/24 (Tables 1-3)",
        VIT_L, partial(shrunk, taps=(7, 23), qd_index=8), structure="shrunk",
    ),
    # Table 8 (and Tables 4, 5): ViT-B structures.
    "setr_b": Variant(
        "SETR-naive head on ViT-B layer 12, pixel cross-entropy (Tables 4, 8)",
        VIT_B, partial(setr_naive, tap=11), criterion=PixelCECriterion,
    ),
    "atm_single_b": Variant(
        "single ATM decoder on ViT-B layer 12 (Tables 4, 5, 8)",
        VIT_B, partial(single, tap=11), structure="single",
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
        VIT_B, partial(shrunk, taps=(5, 11), qd_index=6), structure="shrunk",
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


# The three structures by themselves, for a backbone named by --backbone (ViT-B without one).
VARIANTS.update({
    "segvit": Variant(
        "SegViT: ATM cascade on three layers (the backbone's default taps)",
        VIT_B, partial(cascade, taps=(5, 7, 11)), structure="cascade",
    ),
    "atm_single": Variant(
        "single ATM decoder on the backbone's last layer",
        VIT_B, partial(single, tap=11), structure="single",
    ),
    "segvit_shrunk": Variant(
        "SegViT Shrunk: QD after the first tap, QU on the first and last taps",
        VIT_B, partial(shrunk, taps=(5, 11), qd_index=6), structure="shrunk",
    ),
})  # fmt: skip


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


def crop_problem(crop: int, spec: BackboneSpec | Family | None = None) -> str | None:
    """What is wrong with `crop` for the backbone `spec` (None: fine): the one crop rule
    (segvit.data.info.crop_problem) with the backbone's patch size, where a backbone that
    pads its input to the patch takes any crop of at least one patch. `spec` may be a
    family: experiment files are checked without building the model."""
    spec = spec or VIT_B
    return data_crop_problem(crop, spec.patch_size, pads=getattr(spec, "pads", False))


def check_crop(crop: int, spec: BackboneSpec | Family | None = None) -> int:
    problem = crop_problem(crop, spec)
    if problem:
        raise SegvitError(f"--crop {crop}: {problem}")
    return crop


def resolve_backbone(chosen: Variant, backbone: str | None, tiny: bool) -> BackboneSpec:
    """The backbone a model of `chosen` is built on: `backbone` (a timm name) in place of its
    own where given; the tiny twin with `tiny`."""
    spec = chosen.spec
    if backbone is not None:
        if chosen.structure is None:
            raise SegvitError(f"--backbone: {chosen.name} keeps its own backbone; the structures "
                              f"that take one: {', '.join(_structured())}")  # fmt: skip
        from segvit.modeling.timm_vit import backbone_spec

        spec = backbone_spec(backbone)
        paper = {s.hub_name: s for s in (VIT_B, VIT_L)}
        spec = paper.get(spec.hub_name, spec)  # the paper's own ViTs stay exactly the paper's
    return tiny_spec(spec) if tiny else spec


def _structured() -> list[str]:
    return [name for name, v in VARIANTS.items() if v.structure is not None]


def structure_build(chosen: Variant, spec: ViTSpec, layers: tuple[int, ...] | None) -> Callable:
    """`chosen`'s builder with taps for `spec`: `layers` (0-based), or the backbone's default
    taps (the paper's for 12 and 24 layers). Shrunk: QD right after the first tap, QU on the
    first and last, as the paper places them for ViT-B and ViT-L."""
    from segvit.modeling.families import default_taps

    if chosen.structure is None:
        raise SegvitError(f"--layers: {chosen.name} keeps its own layers; the structures that "
                          f"take them: {', '.join(_structured())}")  # fmt: skip
    taps = tuple(layers) if layers else default_taps(spec.depth)
    if taps[-1] >= spec.depth:
        raise SegvitError(f"--layers: layer {taps[-1] + 1} of a {spec.depth}-layer backbone")
    keywords = dict(chosen.build.keywords)
    if chosen.structure == "cascade":
        keywords["taps"] = taps
    elif chosen.structure == "single":
        keywords["tap"] = taps[-1]
    else:
        if len(taps) < 2 or taps[0] + 1 >= spec.depth:
            raise SegvitError("--layers: Shrunk needs two layers, the first before the last")
        keywords.update(taps=(taps[0], taps[-1]), qd_index=taps[0] + 1)
    return partial(chosen.build.func, **keywords)


def build_model(
    variant: str | Variant,
    *,
    num_classes: int,
    crop: int,
    tiny: bool = False,
    pretrained: str | None = None,
    backbone: str | None = None,
    layers: tuple[int, ...] | None = None,
) -> Segmentor:
    """The model `variant` for `num_classes` classes at `crop`; pretrained backbone weights
    ("hub" or a file) when `pretrained` is set. `tiny`: width-192 ViT of the same depth.
    `backbone`: a timm name (segvit.modeling.families) in place of the variant's ViT;
    `layers`: the tapped layers (0-based), else the backbone's defaults."""
    from segvit.modeling.segmentor import ModelMeta, Segmentor
    from segvit.modeling.weights import load_pretrained, load_swin_pretrained, load_timm_pretrained

    chosen = variant if isinstance(variant, Variant) else get_variant(variant)
    if num_classes < 1:
        raise SegvitError(f"{chosen.name}: num_classes must be >= 1, got {num_classes}")
    spec = resolve_backbone(chosen, backbone, tiny)
    check_crop(crop, spec)
    build = chosen.build
    if backbone is not None or layers:
        build = structure_build(chosen, spec, layers)
    parts_backbone, head = build(spec, num_classes, crop)
    meta = ModelMeta(chosen.name, num_classes, crop, tiny, backbone=backbone, layers=layers)
    model = Segmentor(backbone=parts_backbone, head=head, meta=meta)
    if pretrained and hasattr(parts_backbone, "swin"):
        load_swin_pretrained(parts_backbone.swin, pretrained, spec)
    elif pretrained and spec.pads:
        load_timm_pretrained(parts_backbone.vit, pretrained, spec, parts_backbone.img_size)
    elif pretrained:
        load_pretrained(parts_backbone.vit, pretrained, spec)
    return model
