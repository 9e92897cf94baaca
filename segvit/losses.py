"""Training losses: the ATM set loss (class + focal + dice, no matching) and pixel cross-entropy.

Plain functions over a head's `SegOutput` and a (B, H, W) int64 label map, each returning a dict
whose "loss" entry is what the optimiser steps on; the other entries are for logging. Every
prediction of the output (auxiliary stages first, main last) is supervised the same way and the
terms are summed over them, as the release does. A variant holds its criterion
(segvit.criteria), which calls these with the settings it was built with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from segvit.data.info import IGNORE_INDEX
from segvit.errors import SegvitError
from segvit.modeling.output import MaskPrediction, SegOutput, semantic_inference

# References: SegViT release losses/atm_loss.py and losses/criterion.py (query i is class i,
# eos_coef 0.1, weights 1/20/1); MaskFormer (Cheng et al. 2021) set criterion for the focal and
# dice forms and the num_masks normalisation; RetinaNet (Lin et al. 2017) for the focal loss;
# mmsegmentation 0.24 CrossEntropyLoss for the pixel loss.


def _check_labels(labels: Tensor, num_classes: int, ignore_index: int) -> None:
    """Labels outside [0, K) other than `ignore_index` mean a dataset/config mismatch."""
    if labels.dim() != 3 or labels.dtype != torch.int64:
        raise SegvitError(
            f"labels: expected an int64 tensor (B, H, W), got {labels.dtype} {tuple(labels.shape)}"
        )
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise SegvitError(
            f"labels: value {value} is outside [0, {num_classes}) and is not the ignore index "
            f"{ignore_index}; does the dataset match num_classes?"
        )


def present_classes(
    labels: Tensor, *, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """(B, K) bool: which classes occur in each image's label (ignored pixels excluded)."""
    B = labels.shape[0]
    flat = labels.reshape(B, -1)
    valid = flat != ignore_index
    offsets = torch.arange(B, device=labels.device)[:, None] * num_classes  # (B, 1)
    index = (flat + offsets)[valid]
    counts = torch.bincount(index, minlength=B * num_classes)
    return counts.view(B, num_classes) > 0


def count_target_masks(
    labels: Tensor, *, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """The number of target masks in a batch, a float scalar tensor on the labels' device.

    For distributed training, all-reduce it (sum), divide by the world size and pass it as
    `atm_loss(num_masks=...)`, as MaskFormer normalises by the mean count per process.
    """
    present = present_classes(labels, num_classes=num_classes, ignore_index=ignore_index)
    return present.sum().to(torch.float32)


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, valid: Tensor, *, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """(N,) focal loss of N masks, each the mean over its valid pixels.

    logits, targets, valid: (N, P); targets in {0, 1}, valid a bool mask of counted pixels.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = alpha_t * ce * (1 - p_t) ** gamma  # (N, P)
    weight = valid.to(loss.dtype)
    # A target mask comes from a class present in the image, so each row has a valid pixel.
    return (loss * weight).sum(-1) / weight.sum(-1).clamp(min=1)


def dice_loss(logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
    """(N,) dice loss with smoothing 1 of N masks, over their valid pixels only.

    logits, targets, valid: (N, P). Ignored pixels are zeroed in both the probabilities and
    the targets, so they add nothing to the intersection or to the sizes.
    """
    weight = valid.to(logits.dtype)
    prob = logits.sigmoid() * weight
    targets = targets * weight
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def _check_prediction(pred: MaskPrediction, num_classes: int) -> None:
    if pred.class_logits is None:
        raise SegvitError("atm_loss needs a mask head's output (class_logits is None)")
    B, Q = pred.mask_logits.shape[:2]
    if num_classes != Q or pred.class_logits.shape != (B, num_classes, num_classes + 1):
        raise SegvitError(
            f"atm_loss: expected {num_classes} queries with {num_classes + 1} class logits, got "
            f"class_logits {tuple(pred.class_logits.shape)}, mask_logits "
            f"{tuple(pred.mask_logits.shape)}"
        )


def atm_loss(
    output: SegOutput,
    labels: Tensor,
    *,
    num_classes: int,
    no_object_weight: float = 0.1,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
    class_weight: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
    num_masks: float | Tensor | None = None,
    exclude_ignored_pixels: bool = False,
) -> dict[str, Tensor]:
    """The SegViT loss: per-query classification plus focal and dice on the present classes.

    Query i stands for class i (no Hungarian matching). A class present in an image's label
    makes its query a target (class i, binary mask of class i); every other query is
    "no object" (index K) and gets no mask loss. The entries are weighted and summed over all
    predictions (aux + main): "loss_cls", "loss_focal", "loss_dice", and "loss" their sum.

    Arguments:
        output: the head's output; class_logits (B, K, K+1), mask_logits (B, K, h, w).
        labels: (B, H, W) int64 in [0, K) or `ignore_index`; masks are upsampled to (H, W).
        num_classes: K.
        no_object_weight: cross-entropy weight of the "no object" class (weighted mean).
        focal_weight, dice_weight, class_weight: multipliers of the three terms.
        num_masks: the normaliser of the mask losses; None uses this batch's target count.
            Under DDP pass the all-reduced count divided by the world size. Clamped to >= 1.
        exclude_ignored_pixels: True leaves pixels labelled `ignore_index` out of the focal
            mean and the dice sums. False counts them as background of every target mask,
            which is what the release does (it builds masks as `label == class`).
    """
    _check_labels(labels, num_classes, ignore_index)
    present = present_classes(labels, num_classes=num_classes, ignore_index=ignore_index)
    batch_idx, class_idx = present.nonzero(as_tuple=True)  # (N,), (N,)
    if num_masks is None:
        num_masks = float(batch_idx.numel())
    num_masks = torch.as_tensor(num_masks, dtype=torch.float32, device=labels.device).clamp(min=1)

    # Targets shared by every prediction: class per query, and the N binary masks.
    class_targets = torch.full_like(present, num_classes, dtype=torch.int64)  # (B, K)
    class_targets[batch_idx, class_idx] = class_idx
    target_labels = labels[batch_idx]  # (N, H, W)
    target_masks = (target_labels == class_idx[:, None, None]).flatten(1).float()  # (N, H*W)
    if exclude_ignored_pixels:
        valid = (target_labels != ignore_index).flatten(1)
    else:
        valid = torch.ones_like(target_masks, dtype=torch.bool)

    totals = {"loss_cls": labels.new_zeros((), dtype=torch.float32)}
    totals["loss_focal"] = totals["loss_cls"].clone()
    totals["loss_dice"] = totals["loss_cls"].clone()
    for pred in output.predictions:
        _check_prediction(pred, num_classes)
        logits = pred.class_logits
        assert logits is not None  # checked above; narrows the type
        weight = torch.ones(num_classes + 1, device=logits.device)
        weight[-1] = no_object_weight
        # (B, K+1, K) against (B, K): torch's weighted mean, sum(w_t * ce) / sum(w_t).
        loss_cls = F.cross_entropy(logits.transpose(1, 2).float(), class_targets, weight=weight)

        masks = pred.mask_logits[batch_idx, class_idx]  # (N, h, w)
        masks = F.interpolate(
            masks[:, None].float(), size=labels.shape[-2:], mode="bilinear", align_corners=False
        ).flatten(1)  # (N, H*W)
        focal = sigmoid_focal_loss(masks, target_masks, valid).sum() / num_masks
        dice = dice_loss(masks, target_masks, valid).sum() / num_masks

        totals["loss_cls"] = totals["loss_cls"] + class_weight * loss_cls
        totals["loss_focal"] = totals["loss_focal"] + focal_weight * focal
        totals["loss_dice"] = totals["loss_dice"] + dice_weight * dice
    return {"loss": totals["loss_cls"] + totals["loss_focal"] + totals["loss_dice"], **totals}


def pixel_ce_loss(
    logits: Tensor, labels: Tensor, *, ignore_index: int = IGNORE_INDEX, avg_non_ignore: bool = True
) -> dict[str, Tensor]:
    """Per-pixel cross-entropy of class scores (B, K, h, w) upsampled bilinearly to (H, W).

    avg_non_ignore: True averages over the non-ignored pixels (0 when there are none);
    False averages over all pixels with ignored ones contributing 0, which is the default of
    mmsegmentation 0.24's CrossEntropyLoss (`avg_non_ignore=False`) and so of the release.
    """
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
        raise SegvitError(
            f"pixel_ce_loss: expected logits (B, K, h, w) and labels (B, H, W), got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    _check_labels(labels, logits.shape[1], ignore_index)
    logits = F.interpolate(
        logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False
    )
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    if avg_non_ignore:
        count = (labels != ignore_index).sum().clamp(min=1)
    else:
        count = torch.tensor(labels.numel(), device=labels.device)
    return {"loss": per_pixel.sum() / count}


def pixel_head_loss(
    output: SegOutput,
    labels: Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    avg_non_ignore: bool = True,
    aux_weight: float = 1.0,
) -> dict[str, Tensor]:
    """`pixel_ce_loss` on every prediction of a pixel head, summed; each auxiliary
    prediction's term times `aux_weight`."""
    predictions = output.predictions  # aux first, main last
    weights = [aux_weight] * (len(predictions) - 1) + [1.0]
    total = sum(
        weight
        * pixel_ce_loss(
            p.mask_logits, labels, ignore_index=ignore_index, avg_non_ignore=avg_non_ignore
        )["loss"]
        for weight, p in zip(weights, predictions, strict=True)
    )
    return {"loss": total}


def semantic_ce_loss(
    output: SegOutput,
    labels: Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    avg_non_ignore: bool = True,
) -> dict[str, Tensor]:
    """Table 4 row 2: the ATM head trained with pixel cross-entropy on its semantic output.

    Each prediction's `semantic_inference` scores at the label size, sum over queries of
    class probability times mask probability (values in [0, 1]), are fed to the
    cross-entropy as if they were logits, as mmsegmentation's CrossEntropyLoss treats
    whatever the head's semantic output is. No log is taken: the paper gives no more detail
    and this is the plain reading of "pixel cross-entropy on the head's output". Summed over
    all predictions (aux + main), like the ATM loss.
    """
    size = tuple(labels.shape[-2:])
    total = sum(
        pixel_ce_loss(
            semantic_inference(SegOutput(p.class_logits, p.mask_logits), size),
            labels,
            ignore_index=ignore_index,
            avg_non_ignore=avg_non_ignore,
        )["loss"]
        for p in output.predictions
    )
    return {"loss": total}
