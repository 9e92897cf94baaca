"""A segmentor: a backbone and a head, with the prediction step kept apart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.errors import SegvitError
from segvit.modeling.output import SegOutput, semantic_inference
from segvit.modeling.specs import Normalization


@dataclass(frozen=True)
class ModelMeta:
    """What a checkpoint must carry to rebuild its model (and nothing about its data), and
    what its backbone expects: the patch size and the normalisation it was trained with."""

    variant: str  # a name from segvit.modeling.variants.VARIANTS
    num_classes: int
    crop: int  # training crop; position embeddings and QU queries are made for its grid
    tiny: bool  # width-192 ViT of the same depth
    backbone: str | None = None  # a timm name (--backbone) in place of the variant's own
    layers: tuple[int, ...] | None = None  # tapped layers (0-based, --layers); None: default
    frozen: bool = False  # trained with the backbone frozen (--freeze-backbone)
    patch_size: int = 16  # pixels a token covers (recorded; the backbone decides it)
    norm: Normalization | None = None  # the mean/std inputs were normalised with (recorded)

    def to_dict(self) -> dict[str, str | int | bool]:
        """Plain values, as a weights file's metadata takes them: backbone "" for the
        variant's own, layers "5,7,11" (0-based; "" for the default), the norm as
        norm_mean / norm_std "123.675,116.28,103.53" (0..255 RGB)."""
        content = asdict(self)
        content["backbone"] = self.backbone or ""
        content["layers"] = ",".join(map(str, self.layers)) if self.layers else ""
        del content["norm"]
        if self.norm is not None:
            content["norm_mean"] = ",".join(map(repr, self.norm.mean))
            content["norm_std"] = ",".join(map(repr, self.norm.std))
        return content

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], source: Path | str = "") -> ModelMeta:
        """`to_dict`'s inverse, from a weights file's metadata (other keys are left alone; a
        record from before a field existed takes its default). One line naming `source` and
        the field when one is missing or malformed."""
        try:
            variant, crop = str(record["variant"]), int(record["crop"])
            num_classes = int(record["num_classes"])
        except KeyError as err:
            raise SegvitError(f"{source}: weights file has no {err} in its metadata") from None
        try:
            layers = tuple(int(i) for i in str(record.get("layers") or "").split(",") if i)
        except ValueError:
            said = repr(record["layers"])
            raise SegvitError(f"{source}: metadata layers {said}: expected 5,7,11") from None
        return cls(
            variant=variant,
            num_classes=num_classes,
            crop=crop,
            tiny=bool(record.get("tiny", False)),
            backbone=record.get("backbone") or None,
            layers=layers or None,
            frozen=bool(record.get("frozen", False)),
            patch_size=int(record.get("patch_size", 16)),
            norm=norm_of_record(record, source),
        )


def norm_of_record(record: Mapping[str, Any], source: Path | str) -> Normalization | None:
    """The norm_mean / norm_std a record holds (None: it records none)."""
    if not record.get("norm_mean"):
        return None
    try:
        mean = tuple(float(m) for m in str(record["norm_mean"]).split(","))
        std = tuple(float(s) for s in str(record["norm_std"]).split(","))
        return Normalization(mean, std)  # type: ignore[arg-type]
    except (KeyError, ValueError):
        said = f"{record.get('norm_mean')!r} / {record.get('norm_std')!r}"
        raise SegvitError(f"{source}: metadata norm_mean / norm_std {said}: expected 3 "
                          "comma-separated means and 3 positive stds") from None  # fmt: skip


class Segmentor(nn.Module):
    """`forward` gives the head's SegOutput (training); `predict` gives per-class scores.

    Inputs that are not a multiple of the backbone's patch are padded at the bottom and right
    (with 0, the mean colour once normalised, as mmseg pads); the output says so
    (`SegOutput.padded_to`) and prediction crops back to the input's size.
    """

    def __init__(self, *, backbone: nn.Module, head: nn.Module, meta: ModelMeta) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        spec = backbone.spec
        self.pad_multiple = spec.patch_size if getattr(spec, "pads", False) else 1
        self.meta = replace(meta, patch_size=spec.patch_size, norm=spec.norm)

    @property
    def norm(self) -> Normalization:
        """How its inputs are normalised: what its backbone's pretrained weights expect."""
        return self.backbone.spec.norm

    def use_norm(self, norm: Normalization) -> None:
        """Normalise inputs with `norm` (what a checkpoint was trained with) from now on."""
        self.backbone.spec = replace(self.backbone.spec, norm=norm)
        self.meta = replace(self.meta, norm=norm)

    def freeze_backbone(self) -> None:
        """Train the head alone: the backbone stays in eval mode (dropout, drop path off),
        without gradients, and no backward runs through it."""
        self.backbone.requires_grad_(False)
        self.meta = replace(self.meta, frozen=True)
        self.train(self.training)

    def train(self, mode: bool = True) -> Segmentor:
        super().train(mode)
        if self.meta.frozen:
            self.backbone.eval()
        return self

    def forward(self, images: Tensor) -> SegOutput:
        size = images.shape[-2:]
        m = self.pad_multiple
        pad_h, pad_w = -size[0] % m, -size[1] % m
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))  # (B, 3, H', W'), multiples of m
        if self.meta.frozen:
            with torch.no_grad():
                features = self.backbone(images)
        else:
            features = self.backbone(images)
        output = self.head(features)
        if pad_h or pad_w:
            output.padded_to = tuple(images.shape[-2:])
        return output

    def predict(self, images: Tensor) -> Tensor:
        """Per-class scores (B, K, H, W) at the input size, before any softmax over K."""
        return semantic_inference(self(images), images.shape[-2:])
