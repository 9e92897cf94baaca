"""Test-time inference: sliding window or whole image, over one or many scales, with flips.

The image goes through mmsegmentation's test pipeline as the SegViT release configures it.
For each scale ratio (and each flip) the 8-bit RGB photo is resized by OpenCV (INTER_LINEAR)
to the size mmcv's `imrescale` gives for that ratio of the base scale, mirrored after the
resize if flipped, and only then turned into floats and normalised; so the network sees the
very pixels the release's model saw. Each pass is scored by a score function
`score_fn(images (B, 3, h, w)) -> (B, K, h, w)` (a model's `semantic_inference`) at its own
size: averaged over overlapping windows, or the whole image at once. The scores are mirrored
back, resized (bilinear) to the photo's size and turned into probabilities (softmax over K),
which are averaged across passes, as mmsegmentation's aug_test does.

`infer` returns those probabilities: K float32 maps at the photo's size. `infer_labels`
returns only their argmax and never holds such maps (memory follows the base scale, not the
photo); evaluation and prediction use it. docs/test-pipeline.md walks through the steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from segvit.data.geometry import normalize, rescale_size, resize_image  # training's rules
from segvit.data.info import DatasetSpec
from segvit.errors import SegvitError
from segvit.inference.rowwise import SpilledScores, resize_rows
from segvit.modeling.specs import AUGREG_NORM, Normalization

# References: mmsegmentation 0.24 MultiScaleFlipAug, Resize(keep_ratio), RandomFlip,
# Normalize and EncoderDecoder.slide_inference / aug_test (window grid, count normalisation,
# probability averaging); mmcv 1.x imrescale / imresize (scale rule, cv2 INTER_LINEAR);
# SegViT release test configs for crops, strides and ratios.

ScoreFn = Callable[[Tensor], Tensor]
Mode = Literal["slide", "whole"]

MS_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # with flip=True

# infer_labels finishes this many bytes of one pass's K-channel float32 rows at a time; the
# band's probabilities and running sum take as much again each. Below glibc's 32 MiB mmap
# ceiling, so band after band reuses heap pages instead of faulting in fresh ones.
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


@dataclass(frozen=True)
class InferenceSettings:
    """How one photo is scored at test time; built once (`for_dataset`) and passed down.

    The geometry (crop, stride, base scale) has no default: it is the dataset's for the
    model's crop (`for_dataset`), or every part of it is given.
    """

    num_classes: int  # classes the score function returns
    crop: int  # sliding window side: the model's training crop
    stride: int  # sliding window step, at most the crop
    base_scale: tuple[int, int]  # (long, short) bounds the photo fits at ratio 1
    scales: tuple[float, ...] = (1.0,)  # ratios of base_scale; MS_SCALES is the paper's ms
    flip: bool = False  # also score each scale mirrored (the paper's ms has it)
    mode: Mode = "slide"  # "slide": crop-sized windows every stride; "whole": one call
    window_batch: int = 4  # windows per score_fn call, which bounds memory
    # mmseg's Resize(min_size): at every ratio the short side becomes at least this, and the
    # long side follows the aspect unbounded. None: plain keep-ratio fitting in the scale.
    min_size: int | None = None
    norm: Normalization = AUGREG_NORM  # the mean/std the model's backbone expects (model.norm)

    def __post_init__(self) -> None:
        if self.mode not in ("slide", "whole"):
            raise SegvitError(f"inference mode: expected 'slide' or 'whole', got {self.mode!r}")
        if not self.scales or min(self.scales) <= 0:
            raise SegvitError(f"inference scales: expected positive ratios, got {self.scales}")
        if self.num_classes < 1 or self.crop < 1 or min(self.base_scale) < 1:
            raise SegvitError(
                f"inference: expected positive classes, crop and base scale, got "
                f"{self.num_classes}, {self.crop}, {self.base_scale}"
            )
        if not 0 < self.stride <= self.crop:  # a wider step leaves columns without a score
            raise SegvitError(
                f"inference stride {self.stride}: expected 1 to the crop ({self.crop})"
            )
        if self.window_batch < 1:
            raise SegvitError(f"inference window_batch: expected >= 1, got {self.window_batch}")
        if self.min_size is not None and self.min_size < 1:
            raise SegvitError(f"inference min_size: expected None or >= 1, got {self.min_size}")

    @classmethod
    def for_dataset(
        cls,
        dataset: DatasetSpec,
        crop: int,
        *,
        multi_scale: bool = False,
        mode: Mode = "slide",
        stride: int | None = None,
        window_batch: int = 4,
        norm: Normalization = AUGREG_NORM,
    ) -> InferenceSettings:
        """The release's test settings for a model of `crop` on `dataset`: its stride and base
        scale for the crop (unless `stride` is given), its test min_size, one scale or
        MS_SCALES with flips."""
        return cls(
            num_classes=dataset.num_classes,
            crop=crop,
            stride=stride or dataset.stride_for(crop),
            base_scale=tuple(dataset.base_scale_for(crop)),
            scales=MS_SCALES if multi_scale else (1.0,),
            flip=multi_scale,
            mode=mode,
            window_batch=window_batch,
            min_size=dataset.test_min_size,
            norm=norm,
        )

    def pass_size(self, height: int, width: int, ratio: float) -> tuple[int, int]:
        """(h, w) a height x width photo is resized to at `ratio` (mmcv's imrescale rule)."""
        if self.min_size is None:
            return rescale_size(height, width, self.base_scale, ratio)
        # mmseg's Resize(min_size) replaces the scale by one whose short side is the larger of
        # the scale's own and min_size and whose long side keeps the photo's aspect (floats, in
        # mmseg's order of operations), then rescales to it as usual.
        short = max(min(int(s * ratio) for s in self.base_scale), self.min_size)
        return rescale_size(height, width, (short * max(height, width) / min(height, width), short))


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise SegvitError(f"{name}: expected a positive int or (h, w), got {value!r}")
    return pair  # type: ignore[return-value]


def _check_batch(image: Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise SegvitError(f"inference: expected an image (B, 3, H, W), got {tuple(image.shape)}")


def _check_photo(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise SegvitError(f"inference: expected an 8-bit RGB photo, got {_describe(image)}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise SegvitError(f"inference: expected an (H, W, 3) photo, got {image.shape}")


def _describe(image: object) -> str:
    dtype = getattr(image, "dtype", None)
    return f"{type(image).__name__} of {dtype}" if dtype is not None else type(image).__name__


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
    _check_batch(image)
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


def _pass_scores(
    score_fn: ScoreFn,
    image: np.ndarray,
    settings: InferenceSettings,
    ratios: Sequence[float],
    device: torch.device,
) -> Iterator[Tensor]:
    """Scores (1, K, h, w) of each pass (each ratio, then its mirror image) at the pass's own
    size, on `device`, flips mirrored back, contiguous."""
    H, W = image.shape[:2]
    for ratio in ratios:
        resized = resize_image(image, settings.pass_size(H, W, ratio))  # uint8, as mmcv
        for flipped in (False, True) if settings.flip else (False,):
            # Mirrored after the resize, on the 8-bit image (mmseg's RandomFlip follows Resize);
            # floats exist only at the pass's size, never at the photo's.
            flipped_or_not = resized[:, ::-1] if flipped else resized
            pixels = normalize(flipped_or_not, settings.norm)[None].to(device)
            if settings.mode == "whole":
                scores = _scores(score_fn, pixels, settings.num_classes)
            else:
                scores = slide_inference(
                    score_fn,
                    pixels,
                    num_classes=settings.num_classes,
                    crop=settings.crop,
                    stride=settings.stride,
                    batch_size=settings.window_batch,
                )
            del pixels
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
    image: np.ndarray,
    settings: InferenceSettings,
    *,
    device: torch.device | str = "cpu",
    out_size: tuple[int, int] | None = None,
) -> Tensor:
    """Class probabilities (K, *out_size) on `device`, averaged over scales and flips.

    Arguments:
        score_fn: normalised images (n, 3, h, w) on `device` -> pre-softmax scores (n, K, h, w).
        image: (H, W, 3) uint8 RGB photo at its original resolution.
        settings: crop, stride, base scale, scales, flip, mode (see InferenceSettings).
        device: where the passes are scored and the probabilities kept.
        out_size: size of the returned probabilities; default the photo's (H, W).

    The result holds K floats per output pixel: for labels use `infer_labels`, which never
    makes a full-resolution K-channel tensor.
    """
    _check_photo(image)
    device = torch.device(device)
    out_size = image.shape[:2] if out_size is None else tuple(out_size)
    total = torch.zeros((1, settings.num_classes, *out_size), device=device)
    passes = 0
    for scores in _pass_scores(score_fn, image, settings, settings.scales, device):
        total += _probs(scores, out_size)
        passes += 1
    return total.div_(passes)[0]


@torch.no_grad()
def infer_labels(
    score_fn: ScoreFn,
    image: np.ndarray,
    settings: InferenceSettings,
    *,
    device: torch.device | str = "cpu",
    band_rows: int | None = None,
    keep_bytes: int = KEEP_BYTES,
) -> Tensor:
    """Class labels (H, W) int64 on `device`: the argmax of `infer`'s probabilities.

    Arguments as `infer`, and:
        band_rows: output rows finished at a time; None: as many as keep one K-channel band
            near BAND_BYTES.
        keep_bytes: the passes' scores stay in memory if they take at most this in all,
            else each goes to a temporary file as it is scored (same labels either way).

    Every pass is scored first and kept at its own (small) size, in memory or, past
    `keep_bytes`, in a temporary file, so memory follows the base scale, not the photo.
    Then, band by band, each pass's scores are resized to the band's rows (rowwise.py),
    turned into probabilities and summed, and the argmax is written into the label map.
    A band's floats may differ from the full-image ones in the last bits, so a label may
    differ from `infer(...).argmax(0)` only where its two best classes' mean probabilities
    lie within float32 rounding of each other (tests/test_inference.py bounds it by 1e-5).
    """
    _check_photo(image)
    device = torch.device(device)
    H, W = image.shape[:2]
    K = settings.num_classes
    if band_rows is not None and band_rows < 1:
        raise SegvitError(f"inference band_rows: expected None or >= 1, got {band_rows}")
    band_rows = min(H, band_rows or max(1, BAND_BYTES // (4 * K * W)))
    scales = settings.scales
    per_scale = 2 if settings.flip else 1
    kept = per_scale * sum(4 * K * math.prod(settings.pass_size(H, W, r)) for r in scales)
    spill = kept > keep_bytes
    passes: list[Tensor | SpilledScores] = []
    try:
        # Largest scale first: its scoring (the model's peak) then runs while little is kept.
        for ratio in sorted(scales, reverse=True):
            for scores in _pass_scores(score_fn, image, settings, (ratio,), device):
                passes.append(SpilledScores(scores) if spill else scores)
                del scores
        labels = torch.empty((H, W), dtype=torch.int64, device=device)
        _label_bands(passes, labels, band_rows)
    finally:
        for scores in passes:
            if isinstance(scores, SpilledScores):
                scores.close()
    return labels


def _label_bands(passes: list[Tensor | SpilledScores], labels: Tensor, band_rows: int) -> None:
    """Write the argmax of the passes' summed probabilities into `labels` (H, W), band by
    band of `band_rows` rows (the sum, not the mean: dividing by the pass count changes no
    argmax)."""
    H, W = labels.shape
    for start in range(0, H, band_rows):
        stop = min(start + band_rows, H)
        total = None
        for scores in passes:
            probs = resize_rows(scores, (H, W), start, stop).softmax(dim=1)  # (1, K, R, W)
            total = probs if total is None else total.add_(probs)
            del probs
        labels[start:stop] = total[0].argmax(dim=0)
