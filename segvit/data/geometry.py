"""The image rules training and testing share: the size a scale gives, cv2's resizes, and
mmcv's normalisation.

Both the training transform (segvit.data.transforms) and test-time inference
(segvit.inference) resize and normalise through these functions, so the two sides cannot
drift apart. Resizing has OpenCV's semantics, as mmcv's cv2 backend: images through cv2
itself (INTER_LINEAR, no antialiasing, cv2's fixed-point rounding of uint8), label indices
by cv2's INTER_NEAREST rule (source index floor(i * src / dst)).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from segvit.modeling.specs import AUGREG_NORM, Normalization

# References: mmcv 1.x imrescale / imresize (cv2 backend) and imnormalize; mmsegmentation
# 0.24 Resize(keep_ratio) and Normalize.


def rescale_size(
    height: int, width: int, scale: tuple[float, float], ratio: float = 1.0
) -> tuple[int, int]:
    """(h, w) fitting `scale` = (long, short) bounds while keeping the aspect ratio.

    `ratio` scales the bounds first, truncated to ints as mmseg does (Resize's ratio_range in
    training, the test-time scales). A side is at least one pixel: mmcv would round a very
    elongated photo's short side (70000 x 8 at (2048, 512)) to 0 and OpenCV would refuse it;
    every other size is mmcv's."""
    if ratio != 1.0:
        scale = (int(scale[0] * ratio), int(scale[1] * ratio))
    long_side, short_side = max(scale), min(scale)
    factor = min(long_side / max(height, width), short_side / min(height, width))
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


def normalize(image: np.ndarray, norm: Normalization = AUGREG_NORM) -> torch.Tensor:
    """(H, W, 3) RGB in 0..255 -> (3, H, W) float32, normalised as mmcv's `imnormalize`.

    mmcv subtracts the mean and MULTIPLIES by 1/std (computed in float64, applied as float32),
    which differs from dividing by the std in the last bit of some values.
    """
    out = torch.empty(3, *image.shape[:2])
    normalize_into(np.asarray(image), out.numpy(), norm)
    return out


def nearest_index(source: int, target: int) -> np.ndarray:
    """Source index of each target pixel for a resize source -> target, as cv2.INTER_NEAREST.

    cv2 takes floor(i * (1 / (target / source))) in double precision (not pixel centres):
    the same float64 operations here give the same indices.
    """
    scale = 1.0 / (target / source)
    index = np.floor(np.arange(target, dtype=np.float64) * scale).astype(np.int64)
    return np.minimum(index, source - 1)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (H, W, C) `image` to `size` = (h, w) by cv2 itself (INTER_LINEAR).

    cv2 does not antialias when shrinking and rounds uint8 results in fixed point; the whole
    image is resized because a region of it would not give cv2's pixels (its exact 2x
    shrink, for one, takes a separate area-averaging path).
    """
    height, width = size
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)


def normalize_into(image: np.ndarray, out: np.ndarray, norm: Normalization) -> None:
    """Normalise (h, w, 3) uint8 into the top-left of `out` (3, crop, crop).

    Works in bands of rows so that every temporary stays in the CPU cache: the same
    arithmetic over whole 512x512 planes runs about twice as slow.
    """
    mean = np.array(norm.mean, np.float32)[:, None, None]
    scale = (1 / np.array(norm.std, np.float64)).astype(np.float32)[:, None, None]
    height, width = image.shape[:2]
    step = max(1, 32768 // width)
    for top in range(0, height, step):
        band = image[top : top + step].transpose(2, 0, 1).astype(np.float32)  # (3, rows, w)
        target = out[:, top : top + band.shape[1], :width]
        np.subtract(band, mean, out=target)
        np.multiply(target, scale, out=target)
