"""The training transform's defaults are mmsegmentation's as the release configures them,
seen in what the transform does rather than in its field values.

The resize ratio shows in the padding: a square image on a base scale of (1000, 100) is
resized to int(100 * ratio) pixels a side, smaller than a 256 crop, so the labelled square
in the padded target measures the ratio that was drawn.
"""

from dataclasses import replace

import numpy as np

from segvit.data import transforms
from segvit.data.catalog import DATASETS

SPEC = replace(DATASETS["demo"], base_scale=(1000, 100), base_scales={})
CROP = 256


def _side(transform: transforms.TrainTransform, seed: int) -> int:
    """Side of the labelled square in the target: int(100 * ratio)."""
    image = np.full((8, 8, 3), 100, np.uint8)
    label = np.ones((8, 8), np.uint8)
    _, target = transform(image, label, np.random.default_rng(seed))
    return int((target[:, 0] != 255).sum())


def test_default_ratios_span_half_to_twice_the_base_scale():
    transform = transforms.TrainTransform(SPEC, CROP, cat_max_ratio=1.0, photometric=False)
    sides = [_side(transform, seed) for seed in range(300)]
    # Uniform over 0.5-2.0: every side within [50, 200]; in 300 draws both ends are reached
    # to within 10 (each end has a 1-in-15 chance per draw).
    assert min(sides) >= 50 and max(sides) <= 200
    assert min(sides) < 60 and max(sides) > 190
    assert abs(np.mean(sides) - 125) < 10  # the middle of the range


def test_an_explicit_range_replaces_the_default():
    transform = transforms.TrainTransform(
        SPEC, CROP, ratio_range=(1.0, 1.0), cat_max_ratio=1.0, photometric=False
    )
    assert {_side(transform, seed) for seed in range(5)} == {100}
