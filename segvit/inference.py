"""Test-time inference: sliding window or whole image, over one or many scales, with flips.

Pure functions over a score function `score_fn(images (B, 3, h, w)) -> (B, K, h, w)` that
returns pre-softmax per-class scores at its input size (a model's `semantic_inference`).
Scores are averaged within a scale (overlapping windows); probabilities (softmax over K at
the original size) are averaged across scales and flips, as mmsegmentation's aug_test does.

`infer` returns those probabilities: K float32 maps at the original size. `infer_labels`
returns only their argmax and never holds such maps (memory follows the base scale, not the
photo), with labels identical to `infer(...).argmax(1)`; evaluation and prediction use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from segvit.data.transforms import rescale_size  # the training resize's rule, shared
from segvit.errors import SegvitError
from segvit.rowwise import (
    SpilledScores,
    Workspace,
    bands_match_full,
    resize_rows,
    softmax_rows,
)

# References: mmsegmentation 0.24 EncoderDecoder.slide_inference / aug_test (window grid,
# count normalisation, probability averaging), mmseg MultiScaleFlipAug + Resize(keep_ratio)
# and mmcv.imrescale (scale rule); SegViT release test configs for crops, strides and ratios.

ScoreFn = Callable[[Tensor], Tensor]
Mode = Literal["slide", "whole"]

MS_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # with flip=True

# infer_labels finishes this many bytes of one pass's K-channel float32 rows at a time; the
# band's other buffers (float64 products, softmax, the running sum) take about 7 times as
# much. Below glibc's 32 MiB mmap ceiling, so the per-band softmax output reuses heap pages.
BAND_BYTES = 24 * 2**20

# infer_labels keeps the passes' low-resolution scores in memory up to this many bytes in
# all, and otherwise in temporary files (TMPDIR), read back a band at a time. 150 classes
# at ADE20K's base scale take 0.2 GB a pass at ratio 1, 3.7 GB for the six ratios with
# flips of a multi-scale run; spilled, memory holds one pass while it is scored.
KEEP_BYTES = 1 * 2**30


def window_batch(device: torch.device) -> int:
    """Sliding windows per model call for a prediction: one on a CPU, where a 150-class head
    holds several K x crop x crop float maps per window (0.16 GB each at 512) in the RAM a
    large photo also needs; four on a GPU, where batching pays."""
    return 1 if device.type == "cpu" else 4


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
    return scores.div_(count)  # in place: a large image's scores are not held twice


def _check_options(image: Tensor, mode: str, scales: Sequence[float]) -> None:
    _check_image(image)
    if mode not in ("slide", "whole"):
        raise SegvitError(f"inference mode: expected 'slide' or 'whole', got {mode!r}")
    if not scales or min(scales) <= 0:
        raise SegvitError(f"inference scales: expected positive ratios, got {tuple(scales)}")


def _pass_scores(
    score_fn: ScoreFn,
    image: Tensor,
    *,
    num_classes: int,
    mode: Mode,
    crop: int | tuple[int, int],
    stride: int | tuple[int, int],
    base_scale: tuple[int, int],
    scales: Sequence[float],
    flip: bool,
    batch_size: int,
) -> Iterator[Tensor]:
    """Scores (B, K, h, w) of each scale/flip pass at its own size, flips mirrored back,
    contiguous, in the order their probabilities are summed."""
    _, _, H, W = image.shape
    for ratio in scales:
        size = rescale_size(H, W, base_scale, ratio)
        resized = image
        if size != (H, W):
            resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            view = resized.flip(-1) if flipped else resized
            if mode == "whole":
                scores = _scores(score_fn, view, num_classes)
            else:
                scores = slide_inference(
                    score_fn,
                    view,
                    num_classes=num_classes,
                    crop=crop,
                    stride=stride,
                    batch_size=batch_size,
                )
            if flipped:  # rebound, so the unflipped scores go before the pass is kept
                scores = scores.flip(-1)
            yield scores.contiguous()
            del scores
        del resized


def _probs(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """Probabilities (B, K, *size) of one pass: bilinear resize, then softmax over K."""
    if scores.shape[-2:] != size:
        scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    return scores.softmax(dim=1)


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
    The result holds K floats per output pixel: for labels use `infer_labels`, which never
    makes a full-resolution K-channel tensor.
    """
    _check_options(image, mode, scales)
    B, _, H, W = image.shape
    out_size = (H, W) if out_size is None else tuple(out_size)
    total = image.new_zeros((B, num_classes, *out_size), dtype=torch.float32)
    passes = 0
    for scores in _pass_scores(
        score_fn,
        image,
        num_classes=num_classes,
        mode=mode,
        crop=crop,
        stride=stride,
        base_scale=base_scale,
        scales=scales,
        flip=flip,
        batch_size=batch_size,
    ):
        total += _probs(scores, out_size)
        passes += 1
    return total / passes


@torch.no_grad()
def infer_labels(
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
    batch_size: int = 4,
    band_rows: int | None = None,
    keep_bytes: int = KEEP_BYTES,
) -> Tensor:
    """Class labels (B, H, W) int64 at the original size, equal to `infer(...).argmax(1)`.

    Arguments as `infer`, and:
        band_rows: output rows finished at a time; None: as many as keep one K-channel band
            near BAND_BYTES.
        keep_bytes: the passes' scores stay in memory if they take at most this in all,
            else each goes to a temporary file as it is scored (same labels either way).

    Every pass is scored first and kept at its own (small) size, in memory or, past
    `keep_bytes`, in a temporary file, so memory follows the base scale, not the photo.
    Then, band by band, each pass's scores are resized to the band's rows, turned into
    probabilities and summed in `infer`'s order, and the argmax is written into the label
    map. segvit.rowwise makes each band's floats the very ones the full-image resize and
    softmax would give, so the labels are identical bit for bit; where aten's kernels leave
    no way to do that (see `bands_match_full`: tiny outputs, or 3 classes on one CPU thread)
    the image is done as one band.
    """
    _check_options(image, mode, scales)
    B, _, H, W = image.shape
    if band_rows is not None and band_rows < 1:
        raise SegvitError(f"inference band_rows: expected None or >= 1, got {band_rows}")
    # Largest scale first: its scoring (the model's peak) then runs while little is kept.
    # The kept list stays in infer's order, which the sums below must follow.
    per_scale = 2 if flip else 1
    passes: list[Tensor | SpilledScores] = [image.new_empty(0)] * (len(scales) * per_scale)
    kept = sum(  # bytes of every pass's float32 scores, each at its scale's size
        4 * B * num_classes * math.prod(rescale_size(H, W, base_scale, r)) for r in scales
    )
    spill = kept * per_scale > keep_bytes
    if band_rows is None:
        band_rows = max(1, BAND_BYTES // (4 * B * num_classes * W))
    if band_rows >= H or not bands_match_full(image.device, (H, W), num_classes):
        band_rows = H
    try:
        for i in sorted(range(len(scales)), key=lambda i: -scales[i]):
            at = i * per_scale
            for scores in _pass_scores(
                score_fn,
                image,
                num_classes=num_classes,
                mode=mode,
                crop=crop,
                stride=stride,
                base_scale=base_scale,
                scales=(scales[i],),
                flip=flip,
                batch_size=batch_size,
            ):
                passes[at] = SpilledScores(scores) if spill else scores
                at += 1
                del scores
        labels = torch.empty((B, H, W), dtype=torch.int64, device=image.device)
        _label_bands(passes, labels, band_rows)
    finally:
        for scores in passes:
            if isinstance(scores, SpilledScores):
                scores.close()
    return labels


def _label_bands(passes: list[Tensor | SpilledScores], labels: Tensor, band_rows: int) -> None:
    """Write the argmax of the passes' mean probabilities into `labels` (B, H, W), band by
    band of `band_rows` rows (H: the whole image at once)."""
    B, H, W = labels.shape
    num_classes = passes[0].shape[1]
    workspace = Workspace()
    for start in range(0, H, band_rows):
        stop = min(start + band_rows, H)
        # Classes first, like the bands rowwise makes: the sum and the argmax run contiguous.
        total = workspace.take(
            "total", (num_classes, B, stop - start, W), torch.float32, labels.device
        )
        for index, scores in enumerate(passes):
            if band_rows == H:
                full = scores.full() if isinstance(scores, SpilledScores) else scores
                probs = _probs(full, (H, W))
                del full
            else:
                band = resize_rows(scores, (H, W), start, stop, workspace=workspace)
                probs = softmax_rows(band, height=H, start=start, workspace=workspace)
            if index:
                total.add_(probs.transpose(0, 1))
            else:  # infer adds to zeros; 0 + p == p for probabilities: a copy is the same
                total.copy_(probs.transpose(0, 1))
            del probs
        labels[:, start:stop] = total.div_(len(passes)).argmax(dim=0)
