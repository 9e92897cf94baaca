"""Criteria: a variant's training loss, built once with the class count and its settings.

A variant holds its criterion class (segvit.modeling.variants), the experiment builds it and
the engine calls it, as Mask2Former hands its criterion to the model. Each is a small frozen
dataclass over the plain loss functions of segvit.losses, imported when first called so that
the variant table reads without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from torch import Tensor

    from segvit.modeling.output import SegOutput


class Criterion(Protocol):
    """A training loss: (output, labels) -> {"loss": ..., other terms for the log}."""

    name: str

    def __call__(self, output: SegOutput, labels: Tensor) -> dict[str, Tensor]: ...


@dataclass(frozen=True)
class ATMCriterion:
    """`atm_loss` with the mask count averaged over processes, as Mask2Former normalises it.

    exclude_ignored_pixels: False (the release): pixels labelled 255 are background of every
    mask target; True leaves them out of the focal and dice terms.
    """

    num_classes: int
    exclude_ignored_pixels: bool = False
    name: str = "atm"

    def __call__(self, output: SegOutput, labels: Tensor) -> dict[str, Tensor]:
        from segvit.collective import reduce_count
        from segvit.losses import atm_loss, count_target_masks
        from segvit.modeling.output import pad_labels

        labels = pad_labels(output, labels)
        count = count_target_masks(labels, num_classes=self.num_classes)
        return atm_loss(
            output,
            labels,
            num_classes=self.num_classes,
            num_masks=reduce_count(count),
            exclude_ignored_pixels=self.exclude_ignored_pixels,
        )


@dataclass(frozen=True)
class PixelCECriterion:
    """Per-pixel cross-entropy of a pixel head (SETR), summed over its predictions.

    avg_non_ignore: False (mmsegmentation 0.24's CrossEntropyLoss default, so the release's):
    the mean runs over every pixel, ignored ones adding 0; True averages over labelled pixels.
    aux_weight: the weight of each auxiliary prediction's term (mmseg's SETR-MLA and UperNet
    configs: 0.4); the main prediction's is 1.
    """

    num_classes: int
    avg_non_ignore: bool = False
    aux_weight: float = 1.0
    name: str = "pixel_ce"

    def __call__(self, output: SegOutput, labels: Tensor) -> dict[str, Tensor]:
        from segvit.losses import pixel_head_loss
        from segvit.modeling.output import pad_labels

        labels = pad_labels(output, labels)
        return pixel_head_loss(
            output, labels, avg_non_ignore=self.avg_non_ignore, aux_weight=self.aux_weight
        )


@dataclass(frozen=True)
class SemanticCECriterion:
    """Table 4 row 2: pixel cross-entropy on an ATM head's semantic output (averaged as
    PixelCECriterion is)."""

    num_classes: int
    avg_non_ignore: bool = False
    name: str = "semantic_ce"

    def __call__(self, output: SegOutput, labels: Tensor) -> dict[str, Tensor]:
        from segvit.losses import semantic_ce_loss
        from segvit.modeling.output import pad_labels

        labels = pad_labels(output, labels)
        return semantic_ce_loss(output, labels, avg_non_ignore=self.avg_non_ignore)
