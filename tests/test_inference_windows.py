"""Sliding windows of a crop that is not square: each axis follows its own crop and stride.

# References: mmsegmentation 0.24 EncoderDecoder.slide_inference (h_grids, w_grids and the
# windows shifted back inside the image), worked out by hand below.
"""

import torch

from segvit.inference import slide_inference, window_grid


def test_window_grid_of_a_wide_crop_by_hand():
    # Image 5 x 7, crop 2 x 4, stride 2 x 3: rows (5 - 2 + 2 - 1) // 2 + 1 = 3 at y 0, 2, 4
    # (the last shifted back to 3); columns (7 - 4 + 3 - 1) // 3 + 1 = 2 at x 0, 3.
    assert window_grid((5, 7), (2, 4), (2, 3)) == [
        (0, 2, 0, 4), (0, 2, 3, 7),
        (2, 4, 0, 4), (2, 4, 3, 7),
        (3, 5, 0, 4), (3, 5, 3, 7),
    ]  # fmt: skip


def test_window_grid_of_a_tall_crop_by_hand():
    # Image 7 x 5, crop 4 x 2, stride 3 x 2: the same grid transposed.
    windows = window_grid((7, 5), (4, 2), (3, 2))
    assert windows == [
        (0, 4, 0, 2), (0, 4, 2, 4), (0, 4, 3, 5),
        (3, 7, 0, 2), (3, 7, 2, 4), (3, 7, 3, 5),
    ]  # fmt: skip


def test_slide_inference_with_a_wide_crop_counts_each_pixel_once_per_window():
    # A score function that returns 1 everywhere: the average over windows is 1 wherever a
    # window covered the pixel (no 0/0), and every window was crop-sized.
    sizes = []

    def ones(images):
        sizes.append(tuple(images.shape[-2:]))
        return torch.ones(images.shape[0], 2, *images.shape[-2:])

    scores = slide_inference(ones, torch.zeros(1, 3, 5, 7), num_classes=2, crop=(2, 4),
                             stride=(2, 3), batch_size=1)  # fmt: skip
    assert torch.equal(scores, torch.ones(1, 2, 5, 7))
    assert sizes == [(2, 4)] * 6
