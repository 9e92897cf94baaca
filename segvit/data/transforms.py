"""The paper's training and test transforms, applied jointly to an image and its label.

Training (mmsegmentation's pipeline as the release configures it): resize to a random
0.5-2.0 ratio of the base scale keeping aspect, random crop holding more than one class and
none covering 75% (10 checked draws, then an 11th unchecked), horizontal flip, photometric
distortion, normalisation, pad to the crop with image 0 and label 255. All randomness comes
from the generator passed per call, so a sample is reproducible from (seed, epoch, index)
whatever the worker count.

Resizing has OpenCV's semantics, as mmcv's cv2 backend: the image goes through cv2 itself
(INTER_LINEAR, no antialiasing, cv2's fixed-point rounding of uint8), and the label is
indexed with cv2's INTER_NEAREST rule (source index floor(i * src / dst)). Labels are only
ever indexed, never interpolated; the crop is chosen on the label before the image is resized.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import cv2
import numpy as np
import torch

from segvit.data.datasets import IGNORE_INDEX
from segvit.data.info import DatasetSpec
from segvit.modeling.specs import AUGREG_NORM, Normalization

# References: mmsegmentation 0.24 Resize(ratio_range), RandomCrop(cat_max_ratio),
# RandomFlip, PhotoMetricDistortion, Normalize, Pad; mmcv's imresize (cv2 backend); the
# SegViT release's dataset configs.


def rescale_size(
    height: int, width: int, scale: tuple[float, float], ratio: float = 1.0
) -> tuple[int, int]:
    """(h, w) fitting `scale` = (long, short) bounds while keeping the aspect ratio.

    `ratio` scales the bounds first, truncated to ints as mmseg does (Resize's ratio_range in
    training, the test-time scales)."""
    if ratio != 1.0:
        scale = (int(scale[0] * ratio), int(scale[1] * ratio))
    long_side, short_side = max(scale), min(scale)
    factor = min(long_side / max(height, width), short_side / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def normalize(image: np.ndarray, norm: Normalization = AUGREG_NORM) -> torch.Tensor:
    """(H, W, 3) RGB in 0..255 -> (3, H, W) float32, normalised as mmcv's `imnormalize`.

    mmcv subtracts the mean and MULTIPLIES by 1/std (computed in float64, applied as float32),
    which differs from dividing by the std in the last bit of some values.
    """
    out = torch.empty(3, *image.shape[:2])
    _render(np.asarray(image), out.numpy(), norm)
    return out


@dataclass(frozen=True)
class TrainTransform:
    """(image uint8 HxWx3, label uint8 HxW, rng) -> ((3, crop, crop) float, (crop, crop) int64).

    Arguments:
        info: the dataset (its base scale for `crop` is the resize target).
        crop: the square training crop.
        ratio_range: random resize ratios of the base scale.
        cat_max_ratio: a crop passes when its label holds more than one class (255 not
            counted) and the largest covers less than this share of its labelled pixels;
            1.0 turns the rule off.
        crop_tries: crops checked at most; if none passes, one more is drawn and kept
            unchecked (mmsegmentation's RandomCrop: 10 checked draws, then an 11th).
        flip_prob: probability of a horizontal flip.
        photometric: apply the photometric distortion.
        norm: the backbone weights' normalisation (the model's `spec.norm`).
    """

    info: DatasetSpec
    crop: int
    _: KW_ONLY
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    crop_tries: int = 10
    flip_prob: float = 0.5
    photometric: bool = True
    norm: Normalization = AUGREG_NORM

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ratio = rng.uniform(*self.ratio_range)
        size = rescale_size(*label.shape, self.info.base_scale_for(self.crop), ratio)
        (y0, x0, crop_h, crop_w), crop_label = self.choose_crop(label, size, rng)
        crop_image = resize_image(image, size)[y0 : y0 + crop_h, x0 : x0 + crop_w]  # uint8
        if rng.random() < self.flip_prob:
            crop_image, crop_label = crop_image[:, ::-1], crop_label[:, ::-1]
        if self.photometric:
            crop_image = Photometric.draw(rng)(crop_image)
        padded = torch.zeros(3, self.crop, self.crop)  # pad value 0 after normalisation
        _render(crop_image, padded.numpy(), self.norm)
        target = torch.full((self.crop, self.crop), IGNORE_INDEX, dtype=torch.int64)
        target[: crop_label.shape[0], : crop_label.shape[1]] = torch.from_numpy(
            crop_label.astype(np.int64)
        )
        return padded, target

    def choose_crop(
        self, label: np.ndarray, size: tuple[int, int], rng: np.random.Generator
    ) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """A crop box (y0, x0, h, w) in the resized frame and the label inside it.

        The label of a candidate crop is read straight from the original label with cv2's
        nearest rule, so checking ten crops costs ten crop-sized lookups, not a full resize.
        """
        (height, width), (new_h, new_w) = label.shape, size
        crop_h, crop_w = min(self.crop, new_h), min(self.crop, new_w)
        rows = nearest_index(height, new_h)
        cols = nearest_index(width, new_w)

        def draw() -> tuple[int, int, np.ndarray]:
            y0 = int(rng.integers(0, new_h - crop_h + 1))
            x0 = int(rng.integers(0, new_w - crop_w + 1))
            return y0, x0, label[np.ix_(rows[y0 : y0 + crop_h], cols[x0 : x0 + crop_w])]

        y0, x0, crop_label = draw()
        fixed = crop_h == new_h and crop_w == new_w  # one possible crop: redrawing changes nothing
        if self.cat_max_ratio < 1.0 and not fixed:
            for _ in range(self.crop_tries):
                if _balanced(crop_label, self.cat_max_ratio):
                    break
                y0, x0, crop_label = draw()  # after the last failed check: kept unchecked
        return (y0, x0, crop_h, crop_w), crop_label


def nearest_index(source: int, target: int) -> np.ndarray:
    """Source index of each target pixel for a resize source -> target, as cv2.INTER_NEAREST.

    cv2 takes floor(i * (1 / (target / source))) in double precision (not pixel centres):
    the same float64 operations here give the same indices.
    """
    scale = 1.0 / (target / source)
    index = np.floor(np.arange(target, dtype=np.float64) * scale).astype(np.int64)
    return np.minimum(index, source - 1)


def _balanced(label: np.ndarray, cat_max_ratio: float) -> bool:
    """More than one class, and the largest under `cat_max_ratio` of the labelled pixels."""
    counts = np.bincount(label.ravel(), minlength=256)[:IGNORE_INDEX]
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (H, W, C) `image` to `size` = (h, w) by cv2 itself (INTER_LINEAR).

    cv2 does not antialias when shrinking and rounds uint8 results in fixed point; the whole
    image is resized because a region of it would not give cv2's pixels (its exact 2x
    shrink, for one, takes a separate area-averaging path).
    """
    height, width = size
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Photometric:
    """One draw of the photometric distortion (None: that part is skipped this time).

    mmsegmentation's PhotoMetricDistortion, to the pixel: each part applies with probability
    0.5 and contrast goes first or last at random; brightness +-32 and contrast x0.5-1.5 on
    the uint8 image, saturation x0.5-1.5 on OpenCV's uint8 HSV, hue shifted by an integer in
    [-18, 18) of OpenCV's 2-degree units. Every step computes in float32, clips to 0..255 and
    truncates back to uint8, as mmseg does.
    """

    brightness: float | None
    contrast: float | None
    contrast_first: bool
    saturation: float | None
    hue_shift: int | None  # OpenCV hue units (2 degrees)

    @staticmethod
    def draw(rng: np.random.Generator) -> Photometric:
        brightness = rng.uniform(-32, 32) if rng.integers(2) else None
        contrast_first = bool(rng.integers(2))
        contrast = rng.uniform(0.5, 1.5) if contrast_first and rng.integers(2) else None
        saturation = rng.uniform(0.5, 1.5) if rng.integers(2) else None
        hue = int(rng.integers(-18, 18)) if rng.integers(2) else None
        if not contrast_first and rng.integers(2):
            contrast = rng.uniform(0.5, 1.5)
        return Photometric(brightness, contrast, contrast_first, saturation, hue)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Distort (h, w, 3) uint8 RGB; a new uint8 array."""
        image = np.ascontiguousarray(image)
        if self.brightness is not None:
            image = _affine_uint8(image, beta=self.brightness)
        if self.contrast_first and self.contrast is not None:
            image = _affine_uint8(image, alpha=self.contrast)
        # HSV of RGB here equals HSV of BGR in mmseg (which reads images as BGR).
        if self.saturation is not None:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hsv[..., 1] = _affine_uint8(hsv[..., 1], alpha=self.saturation)
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if self.hue_shift is not None:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = (hsv[..., 0].astype(np.int64) + self.hue_shift) % 180
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if not self.contrast_first and self.contrast is not None:
            image = _affine_uint8(image, alpha=self.contrast)
        return image


def _affine_uint8(pixels: np.ndarray, *, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """pixels * alpha + beta in float32, clipped to 0..255, truncated to uint8 (mmseg's
    PhotoMetricDistortion.convert)."""
    out = pixels.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(out, 0, 255).astype(np.uint8)


def _render(image: np.ndarray, out: np.ndarray, norm: Normalization) -> None:
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


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that augments sample `index` in `epoch` of a run seeded with `seed`.

    Keyed by the sample alone, so augmentation depends on neither the worker count nor the
    order samples are read in, and a resumed run repeats it bit for bit. The 1 keeps these
    streams apart from the sampler's shuffle, seeded with [seed, 0, epoch].
    """
    return np.random.default_rng([seed, 1, epoch, index])
