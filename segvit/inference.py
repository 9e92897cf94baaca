"""Test-time inference: sliding window or whole image, over one or many scales, with flips.

Pure functions over a score function `score_fn(images (B, 3, h, w)) -> (B, K, h, w)` that
returns pre-softmax per-class scores at its input size (a model's `semantic_inference`).
Scores are averaged within a scale (overlapping windows); probabilities (softmax over K at
the original size) are averaged across scales and flips, as mmsegmentation's aug_test does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from segvit.data.transforms import rescale_size  # the training resize's rule, shared
from segvit.errors import SegvitError

# References: mmsegmentation 0.24 EncoderDecoder.slide_inference / aug_test (window grid,
# count normalisation, probability averaging), mmseg MultiScaleFlipAug + Resize(keep_ratio)
# and mmcv.imrescale (scale rule); SegViT release test configs for crops, strides and ratios.

ScoreFn = Callable[[Tensor], Tensor]
Mode = Literal["slide", "whole"]

MS_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # with flip=True


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise SegvitError(f"{name}: expected a positive int or (h, w), got {value!r}")
    return pair  # type: ignore[return-value]


def _check_image(image: Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise SegvitError(f"inference: expected an image (B, 3, H, W), got {tuple(image.shape)}")


def _scores(score_fn: ScoreFn, images: Tensor, num_classes: int | None) -> Tensor:
    out = score_fn(images)
    B, _, h, w = images.shape
    if out.dim() != 4 or out.shape[0] != B or out.shape[-2:] != (h, w):
        raise SegvitError(
            f"score function: expected scores (B={B}, K, {h}, {w}) for its input, "
            f"got {tuple(out.shape)}"
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise SegvitError(f"score function: expected {num_classes} classes, got {out.shape[1]}")
    return out.float()


def window_grid(
    size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """The sliding windows (y1, y2, x1, x2) covering an image, clamped inside it.

    Per axis: max(H - crop + stride - 1, 0) // stride + 1 windows at multiples of the
    stride; the last is shifted back so it ends at the border; an axis shorter than the
    crop gets one window of the whole axis.
    """
    (H, W), (ch, cw), (sh, sw) = size, crop, stride
    rows = max(H - ch + sh - 1, 0) // sh + 1
    cols = max(W - cw + sw - 1, 0) // sw + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, H), min(c * sw + cw, W)
            windows.append((max(y2 - ch, 0), y2, max(x2 - cw, 0), x2))
    return windows


@torch.no_grad()
def whole_inference(score_fn: ScoreFn, image: Tensor) -> Tensor:
    """Scores (B, K, H, W) of the whole image in one call."""
    _check_image(image)
    return _scores(score_fn, image, None)


@torch.no_grad()
def slide_inference(
    score_fn: ScoreFn,
    image: Tensor,
    *,
    num_classes: int,
    crop: int | tuple[int, int],
    stride: int | tuple[int, int],
    batch_size: int = 4,
) -> Tensor:
    """Scores (B, K, H, W) averaged over overlapping crop-sized windows.

    A window smaller than the crop (an image side shorter than the crop) is padded with 0
    at the bottom/right to the crop, because fixed-size models (the Shrunk QU head) need
    exactly the crop, and its scores are cropped back. `batch_size` windows (times B images)
    go through `score_fn` at once, which bounds memory.
    """
    _check_image(image)
    if batch_size < 1:
        raise SegvitError(f"slide inference: batch_size must be >= 1, got {batch_size}")
    crop, stride = _pair(crop, "crop"), _pair(stride, "stride")
    B, _, H, W = image.shape
    scores = image.new_zeros((B, num_classes, H, W), dtype=torch.float32)
    count = image.new_zeros((1, 1, H, W), dtype=torch.float32)
    windows = window_grid((H, W), crop, stride)
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        crops = []
        for y1, y2, x1, x2 in chunk:
            window = image[:, :, y1:y2, x1:x2]
            pad = (0, crop[1] - (x2 - x1), 0, crop[0] - (y2 - y1))  # right, bottom
            crops.append(F.pad(window, pad, value=0.0))
        out = _scores(score_fn, torch.cat(crops), num_classes)  # (n*B, K, ch, cw)
        for i, (y1, y2, x1, x2) in enumerate(chunk):
            scores[:, :, y1:y2, x1:x2] += out[i * B : (i + 1) * B, :, : y2 - y1, : x2 - x1]
            count[:, :, y1:y2, x1:x2] += 1
    return scores / count


@torch.no_grad()
def infer(
    score_fn: ScoreFn,
    image: Tensor,
    *,
    num_classes: int,
    mode: Mode = "slide",
    crop: int | tuple[int, int] = 512,
    stride: int | tuple[int, int] = 341,
    base_scale: tuple[int, int] = (2048, 512),
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    out_size: tuple[int, int] | None = None,
    batch_size: int = 4,
) -> Tensor:
    """Class probabilities (B, K, *out_size) averaged over scales and flips.

    Arguments:
        score_fn: images (n, 3, h, w) -> pre-softmax scores (n, K, h, w).
        image: (B, 3, H, W) normalised image at its ORIGINAL resolution.
        mode: "slide" (windows of `crop` every `stride`) or "whole".
        base_scale: (long, short) the image is fitted into, keeping aspect, at ratio 1.
        scales: ratios of `base_scale`; (1.0,) is single scale, MS_SCALES the paper's set.
        flip: also run each scale on the horizontally flipped image (scores flipped back).
        out_size: size of the returned probabilities; default the original (H, W).

    Per pass: resize (bilinear) to the scale's size, score, resize the scores (bilinear) to
    `out_size`, softmax over K, add to a running sum; only one pass's tensors live at once.
    """
    _check_image(image)
    if mode not in ("slide", "whole"):
        raise SegvitError(f"inference mode: expected 'slide' or 'whole', got {mode!r}")
    if not scales or min(scales) <= 0:
        raise SegvitError(f"inference scales: expected positive ratios, got {tuple(scales)}")
    B, _, H, W = image.shape
    out_size = (H, W) if out_size is None else tuple(out_size)
    long, short = base_scale

    def run(resized: Tensor) -> Tensor:
        if mode == "whole":
            return _scores(score_fn, resized, num_classes)
        return slide_inference(
            score_fn,
            resized,
            num_classes=num_classes,
            crop=crop,
            stride=stride,
            batch_size=batch_size,
        )

    total = image.new_zeros((B, num_classes, *out_size), dtype=torch.float32)
    passes = 0
    for ratio in scales:
        # mmseg scales the (long, short) target by the ratio and truncates it to ints.
        size = rescale_size(H, W, (int(long * ratio), int(short * ratio)))
        resized = image
        if size != (H, W):
            resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            view = resized.flip(-1) if flipped else resized
            scores = run(view)
            if flipped:
                scores = scores.flip(-1)
            if scores.shape[-2:] != out_size:
                scores = F.interpolate(scores, size=out_size, mode="bilinear", align_corners=False)
            total += scores.softmax(dim=1)
            passes += 1
            del scores
        del resized
    return total / passes
