"""The paper's training and test transforms, applied jointly to an image and its label.

Training (mmsegmentation's pipeline as the release configures it): resize to a random
0.5-2.0 ratio of the base scale keeping aspect, random crop holding more than one class and
none covering 75% (10 checked draws, then an 11th unchecked), horizontal flip, photometric
distortion, normalisation, pad to the crop with image 0 and label 255. All randomness comes
from the generator passed per call, so a sample is reproducible from (seed, epoch, index)
whatever the worker count.

Resizing and normalisation are segvit.data.geometry's, the rules test-time inference uses
too. Labels are only ever indexed, never interpolated; the crop is chosen on the label
before the image is resized.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import cv2
import numpy as np
import torch

from segvit.data.datasets import IGNORE_INDEX
from segvit.data.geometry import (
    nearest_index,
    normalize_into,
    rescale_size,
    resize_image,
)
from segvit.data.info import DatasetSpec
from segvit.modeling.specs import AUGREG_NORM, Normalization

# References: mmsegmentation 0.24 Resize(ratio_range), RandomCrop(cat_max_ratio),
# RandomFlip, PhotoMetricDistortion, Normalize, Pad; mmcv's imresize (cv2 backend); the
# SegViT release's dataset configs.


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
        normalize_into(crop_image, padded.numpy(), self.norm)
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


def _balanced(label: np.ndarray, cat_max_ratio: float) -> bool:
    """More than one class, and the largest under `cat_max_ratio` of the labelled pixels."""
    counts = np.bincount(label.ravel(), minlength=256)[:IGNORE_INDEX]
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


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


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that augments sample `index` in `epoch` of a run seeded with `seed`.

    Keyed by the sample alone, so augmentation depends on neither the worker count nor the
    order samples are read in, and a resumed run repeats it bit for bit. The 1 keeps these
    streams apart from the sampler's shuffle, seeded with [seed, 0, epoch].
    """
    return np.random.default_rng([seed, 1, epoch, index])
