"""The small typed output every head returns, and semantic inference from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class MaskPrediction:
    """One supervised prediction: per-query class logits and mask logits."""

    class_logits: Tensor | None  # (B, Q, K+1), "no object" last; None for pixel heads
    mask_logits: Tensor  # (B, Q, h, w) pre-sigmoid masks; pixel heads: (B, K, h, w) class scores


@dataclass
class SegOutput:
    """What a head returns: the main prediction and the auxiliary ones (earlier stages/layers).

    Mask heads (ATM, QU) fill `class_logits`; pixel heads (SETR) leave it None and put per-class
    logits in `mask_logits`. Shapes are at feature resolution; `semantic_inference` resizes.
    """

    class_logits: Tensor | None  # (B, Q, K+1)
    mask_logits: Tensor  # (B, Q, h, w)
    aux: list[MaskPrediction] = field(default_factory=list)  # shallowest first
    padded_to: tuple[int, int] | None = None  # the input was padded (bottom, right) to this
    # size to fit the patch: the masks cover it, and the input's own pixels are its top left

    @property
    def predictions(self) -> list[MaskPrediction]:
        """Every supervised prediction, aux first, main last."""
        return [*self.aux, MaskPrediction(self.class_logits, self.mask_logits)]


def semantic_inference(output: SegOutput, size: tuple[int, int]) -> Tensor:
    """Per-class scores (B, K, H, W) at `size` from a head's output.

    Mask heads: softmax class probabilities without "no object" times sigmoid masks.
    Pixel heads: the class logits, resized. Callers apply softmax over K when they need
    probabilities (sliding window and multi-scale average after it, as mmsegmentation does).
    """
    full = output.padded_to or size  # the masks cover the padded input; crop it back
    masks = F.interpolate(output.mask_logits, size=full, mode="bilinear", align_corners=False)
    masks = masks[..., : size[0], : size[1]]
    if output.class_logits is None:
        return masks
    class_prob = output.class_logits.softmax(dim=-1)[..., :-1]  # (B, Q, K)
    return torch.einsum("bqk,bqhw->bkhw", class_prob, masks.sigmoid())


def pad_labels(output: SegOutput, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """(B, H, W) labels padded with `ignore_index` to the size the input was padded to, so a
    loss sees the masks over the same pixels (the pipeline pads to the crop the same way)."""
    if output.padded_to is None:
        return labels
    pad_h, pad_w = output.padded_to[0] - labels.shape[-2], output.padded_to[1] - labels.shape[-1]
    return F.pad(labels, (0, pad_w, 0, pad_h), value=ignore_index)
