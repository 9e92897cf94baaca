"""Test-time inference over tiny score functions: the release's test pipeline (cv2 resize of
the 8-bit photo, flip, normalise), sliding windows, multi-scale and flip, banded labels."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from segvit.data.catalog import get_dataset
from segvit.data.geometry import normalize
from segvit.errors import SegvitError
from segvit.inference import (
    MS_SCALES,
    InferenceSettings,
    infer,
    infer_labels,
    rescale_size,
    slide_inference,
    window_batch,
    window_grid,
)
from segvit.inference.rowwise import SpilledScores

K = 4


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random 8-bit RGB photo (H, W, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _conv1x1() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, K, 1).eval()


class _Tiny(nn.Module):
    """Non-trivial: a 3x3 conv and a global-mean term, so it sees its whole input."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, K, 3, padding=1)
        self.mix = nn.Linear(3, K)

    def forward(self, x):
        return self.conv(x).tanh() + self.mix(x.mean((2, 3)))[:, :, None, None]


def test_window_grid_follows_the_mmseg_rule():
    # H = 10, crop 4, stride 3: (10 - 4 + 2) // 3 + 1 = 3 rows at 0, 3, then 6 clamped to 6..10.
    rows = sorted({(y1, y2) for y1, y2, _, _ in window_grid((10, 4), (4, 4), (3, 3))})
    assert rows == [(0, 4), (3, 7), (6, 10)]
    # H = 11: 4 rows; the last would end at 13 and is shifted back to 7..11.
    rows = sorted({(y1, y2) for y1, y2, _, _ in window_grid((11, 4), (4, 4), (3, 3))})
    assert rows == [(0, 4), (3, 7), (6, 10), (7, 11)]
    # An axis shorter than the crop gets one window over the whole axis.
    assert window_grid((2, 3), (4, 4), (3, 3)) == [(0, 2, 0, 3)]


@torch.no_grad()
def whole_inference(score_fn, image):
    """The reference: the scores of the whole image in one call."""
    return score_fn(image).float()


@pytest.mark.parametrize("fn", [_conv1x1(), _Tiny().eval()], ids=["conv1x1", "tiny"])
def test_one_window_covering_the_image_equals_whole_inference(fn):
    image = torch.randn(1, 3, 8, 8)
    slide = slide_inference(fn, image, num_classes=K, crop=8, stride=5)
    torch.testing.assert_close(slide, whole_inference(fn, image))


def test_translation_equivariant_fn_gives_whole_result_with_many_windows():
    fn = _conv1x1()
    image = torch.randn(1, 3, 13, 17)
    slide = slide_inference(fn, image, num_classes=K, crop=5, stride=3, batch_size=2)
    torch.testing.assert_close(slide, whole_inference(fn, image))


def test_overlaps_are_divided_by_their_count():
    # Each window's score is its own index; a pixel's result is the mean of its windows.
    calls = []

    def fn(x):
        n = x.shape[0]
        out = torch.arange(len(calls), len(calls) + n, dtype=torch.float32)
        calls.extend(range(n))
        return out[:, None, None, None].expand(n, 1, *x.shape[-2:])

    image = torch.zeros(1, 3, 1, 10)
    out = slide_inference(fn, image, num_classes=1, crop=4, stride=3, batch_size=3)
    # Windows on x: 0..4 (#0), 3..7 (#1), 6..10 (#2).
    expected = torch.tensor([0, 0, 0, 0.5, 1, 1, 1.5, 2, 2, 2])
    torch.testing.assert_close(out[0, 0, 0], expected)
    assert len(calls) == 3

    ones = slide_inference(
        lambda x: torch.ones(x.shape[0], 2, *x.shape[-2:]), image, num_classes=2, crop=4, stride=1
    )
    torch.testing.assert_close(ones, torch.ones(1, 2, 1, 10))


def test_small_images_are_padded_with_zero_to_the_crop_and_cropped_back():
    seen = []

    def fn(x):
        seen.append(x.clone())
        return x[:, :1].repeat(1, K, 1, 1)

    image = torch.randn(1, 3, 3, 5)
    out = slide_inference(fn, image, num_classes=K, crop=6, stride=4)
    assert seen[0].shape == (1, 3, 6, 6)
    torch.testing.assert_close(seen[0][:, :, :3, :5], image)
    assert seen[0][:, :, 3:].abs().sum() == 0 and seen[0][:, :, :, 5:].abs().sum() == 0
    torch.testing.assert_close(out, image[:, :1].repeat(1, K, 1, 1))


def test_score_fn_with_wrong_shape_is_rejected():
    with pytest.raises(SegvitError, match="score function"):
        slide_inference(
            lambda x: torch.zeros(1, K, 2, 2),
            torch.zeros(1, 3, 4, 4),
            num_classes=K,
            crop=4,
            stride=4,
        )
    with pytest.raises(SegvitError, match="classes"):
        slide_inference(
            lambda x: torch.zeros(1, 2, 4, 4),
            torch.zeros(1, 3, 4, 4),
            num_classes=K,
            crop=4,
            stride=4,
        )


def test_rescale_size_matches_hand_computed_sizes():
    # ADE20K-like 683x512 (w x h) into (2048, 512): factor min(2048/683, 512/512) = 1.
    assert rescale_size(512, 683, (2048, 512)) == (512, 683)
    # 375x500 into (2048, 512): factor 512/375, w = int(500 * 1.36533 + 0.5) = 683.
    assert rescale_size(375, 500, (2048, 512)) == (512, 683)
    # A very wide 100x3000 is bound by the long side: factor 2048/3000.
    assert rescale_size(100, 3000, (2048, 512)) == (68, 2048)
    # Ratio 0.75 of (2048, 512) is (1536, 384): 480x640 -> factor 0.8.
    assert rescale_size(480, 640, (1536, 384)) == (384, 512)


# mmseg's MultiScaleFlipAug turns img_scale (w, h) and a ratio r into (int(w r), int(h r));
# Resize(keep_ratio) hands that to mmcv's imrescale: factor min(long / max(w, h), short /
# min(w, h)), new size (int(w f + 0.5), int(h f + 0.5)). Worked out by hand, as (w, h):
MMSEG_SIZES = {
    # 683x512: f = short / 512 at every ratio (the long bound never binds).
    ((2048, 512), (683, 512)): [
        (342, 256),  # (1024, 256): f 0.5, 341.5 + 0.5
        (512, 384),  # (1536, 384): f 0.75, 512.25 + 0.5
        (683, 512),  # (2048, 512): f 1
        (854, 640),  # (2560, 640): f 1.25, 853.75 + 0.5
        (1025, 768),  # (3072, 768): f 1.5, 1024.5 + 0.5 = 1025 exactly
        (1195, 896),  # (3584, 896): f 1.75, 1195.25 + 0.5
    ],
    ((2560, 640), (683, 512)): [
        (427, 320),  # (1280, 320): f 0.625, 426.875 + 0.5
        (640, 480),  # (1920, 480): f 0.9375, 640.3125 + 0.5
        (854, 640),  # (2560, 640): f 1.25
        (1067, 800),  # (3200, 800): f 1.5625, 1067.1875 + 0.5
        (1281, 960),  # (3840, 960): f 1.875, 1280.625 + 0.5
        (1494, 1120),  # (4480, 1120): f 2.1875, 1494.0625 + 0.5
    ],
    # 500x375: f = short / 375.
    ((2048, 512), (500, 375)): [
        (341, 256),  # f 256/375: w 341.33 + 0.5
        (512, 384),  # f 1.024: w 512 + 0.5
        (683, 512),  # f 512/375: w 682.67 + 0.5
        (853, 640),  # f 640/375: w 853.33 + 0.5
        (1024, 768),  # f 2.048: w 1024 + 0.5
        (1195, 896),  # f 896/375: w 1194.67 + 0.5
    ],
    ((2560, 640), (500, 375)): [
        (427, 320),  # f 320/375: w 426.67 + 0.5
        (640, 480),  # f 1.28: w 640 + 0.5
        (853, 640),  # f 640/375
        (1067, 800),  # f 800/375: w 1066.67 + 0.5
        (1280, 960),  # f 2.56: w 1280 + 0.5
        (1493, 1120),  # f 1120/375: w 1493.33 + 0.5
    ],
}


@pytest.mark.parametrize(("img_scale", "photo"), MMSEG_SIZES)
def test_multi_scale_sizes_are_mmsegs(img_scale, photo):
    (width, height), expected = photo, MMSEG_SIZES[img_scale, photo]
    settings = InferenceSettings(
        num_classes=K, crop=8, stride=6, base_scale=img_scale, scales=MS_SCALES
    )
    got = [settings.pass_size(height, width, r)[::-1] for r in MS_SCALES]  # (w, h)
    assert got == expected


# The release's PASCAL-Context and COCO-Stuff-10K test pipelines add Resize(min_size=...):
# the scale's short side is raised to min_size when below it, the long side is the photo's
# aspect times that short side (not bounded by the scale), then imrescale as above. By hand:
MIN_SIZE_SIZES = {
    # PASCAL-Context: (520, 520), min_size 480, a 500x375 photo (aspect 4/3).
    ((520, 520), 480, (500, 375)): [
        (640, 480),  # (260, 260): short raised to 480, long 640.0: f 1.28
        (640, 480),  # (390, 390): raised to 480 as well
        (693, 520),  # (520, 520): short 520, long 693.33: f 1.3867, w 693.33 + 0.5
        (867, 650),  # (650, 650): long 866.67 + 0.5
        (1040, 780),  # (780, 780): long 1040
        (1213, 910),  # (910, 910): long 1213.33
    ],
    # COCO-Stuff-10K: (2048, 512), min_size 512, a 640x480 photo.
    ((2048, 512), 512, (640, 480)): [
        (683, 512),  # (1024, 256): short raised to 512, long 682.67 + 0.5
        (683, 512),  # (1536, 384): raised to 512
        (683, 512),  # (2048, 512)
        (853, 640),  # (2560, 640): long 853.33
        (1024, 768),  # (3072, 768)
        (1195, 896),  # (3584, 896): long 1194.67
    ],
}


@pytest.mark.parametrize(("img_scale", "min_size", "photo"), MIN_SIZE_SIZES)
def test_min_size_sizes_are_mmsegs(img_scale, min_size, photo):
    (width, height), expected = photo, MIN_SIZE_SIZES[img_scale, min_size, photo]
    settings = InferenceSettings(
        num_classes=K, crop=8, stride=6, base_scale=img_scale, min_size=min_size
    )
    got = [settings.pass_size(height, width, r)[::-1] for r in MS_SCALES]  # (w, h)
    assert got == expected


def test_min_size_lifts_the_long_side_bound():
    # A 3000x500 panorama into (2048, 512): plain keep-ratio stops at the long side (f 2048/3000
    # -> 2048x341); with min_size 512 the short side wins: f 1.024 -> 3072x512.
    plain = InferenceSettings(num_classes=K, crop=8, stride=6, base_scale=(2048, 512))
    lifted = InferenceSettings(
        num_classes=K, crop=8, stride=6, base_scale=(2048, 512), min_size=512
    )
    assert plain.pass_size(500, 3000, 1.0) == (341, 2048)
    assert lifted.pass_size(500, 3000, 1.0) == (512, 3072)
    # Portrait photos the same way: 375x500 (w x h) in PASCAL-Context's (520, 520).
    pc = InferenceSettings(num_classes=K, crop=8, stride=6, base_scale=(520, 520), min_size=480)
    assert pc.pass_size(500, 375, 1.0) == (693, 520)


class _Recorder:
    """A score function that keeps every input it is given."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return x[:, :1].repeat(1, K, 1, 1)


def _cv2_then_normalise(photo: np.ndarray, size_hw: tuple[int, int]) -> torch.Tensor:
    """The release's network input: cv2 INTER_LINEAR on the 8-bit image, then normalised."""
    resized = cv2.resize(photo, size_hw[::-1], interpolation=cv2.INTER_LINEAR)
    return normalize(resized)[None]


@pytest.mark.parametrize(
    ("size", "base_scale", "scales", "passes"),
    [
        # 53x37 into (80, 30) at 0.5, 1, 1.75: (40, 15) f 15/37 -> w 21.49; (80, 30) f 30/37
        # -> w 42.97 + 0.5; (140, 52) f 52/37 -> w 74.49 (down, down, up; odd sizes).
        ((37, 53), (80, 30), (0.5, 1.0, 1.75), [(15, 21), (30, 43), (52, 74)]),
        # 90x64 into (2048, 32): f 0.5 exactly, cv2's own 2x shrink; and back up at 1.75.
        ((64, 90), (2048, 32), (1.0, 1.75), [(32, 45), (56, 79)]),
    ],
)
def test_network_input_is_cv2_on_the_8bit_photo_then_normalised(size, base_scale, scales, passes):
    photo = _photo(*size, seed=size[0])
    fn = _Recorder()
    settings = InferenceSettings(
        num_classes=K,
        crop=8,
        stride=6,
        mode="whole",
        base_scale=base_scale,
        scales=scales,
        flip=True,
    )
    infer(fn, photo, settings)
    assert [tuple(x.shape[-2:]) for x in fn.inputs[::2]] == passes
    for i, size_hw in enumerate(passes):
        expected = _cv2_then_normalise(photo, size_hw)
        assert torch.equal(fn.inputs[2 * i], expected)  # bit for bit
        assert torch.equal(fn.inputs[2 * i + 1], expected.flip(-1))  # mirrored after the resize
    # The float path (normalise the photo, then resize the floats) is another input.
    floats = F.interpolate(normalize(photo)[None], size=passes[0], mode="bilinear")
    assert not torch.equal(floats, fn.inputs[0])


def test_the_same_size_pass_is_the_photo_itself():
    photo = _photo(30, 40)
    fn = _Recorder()
    infer(
        fn,
        photo,
        InferenceSettings(num_classes=K, crop=8, stride=6, mode="whole", base_scale=(40, 30)),
    )
    assert torch.equal(fn.inputs[0], normalize(photo)[None])


def test_infer_resizes_to_the_scale_and_back():
    sizes = []

    def fn(x):
        sizes.append(tuple(x.shape[-2:]))
        return torch.zeros(x.shape[0], K, *x.shape[-2:])

    settings = InferenceSettings(
        num_classes=K, crop=8, stride=6, mode="whole", base_scale=(80, 20), scales=(1, 0.5)
    )
    probs = infer(fn, _photo(30, 40), settings)
    # (80, 20): factor min(80/40, 20/30) -> 20x27; (40, 10): factor 1/3 -> 10x13.
    assert sizes == [(20, 27), (10, 13)]
    assert probs.shape == (K, 30, 40)
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / K))


@pytest.mark.parametrize(
    "mode_kw",
    [dict(mode="whole", crop=8, stride=8), dict(mode="slide", crop=8, stride=8)],
    ids=["whole", "slide"],
)
def test_flip_averaging_is_symmetric(mode_kw):
    # With a mirror-symmetric window grid (here two 8-wide windows over 16 columns) a
    # score fn and its mirror image give the same flip-averaged probabilities.
    fn = _Tiny().eval()

    def mirrored(x):
        return fn(x.flip(-1)).flip(-1)

    photo = _photo(12, 16)
    settings = InferenceSettings(num_classes=K, base_scale=(16, 12), flip=True, **mode_kw)
    a = infer(fn, photo, settings)
    torch.testing.assert_close(a, infer(mirrored, photo, settings))
    torch.testing.assert_close(infer(fn, photo[:, ::-1].copy(), settings), a.flip(-1))
    no_flip = infer(fn, photo, InferenceSettings(**{**settings.__dict__, "flip": False}))
    assert not torch.allclose(a, no_flip)  # the flipped pass did contribute


def test_flip_pass_is_the_mirrored_probabilities_averaged_in():
    fn = _Tiny().eval()
    photo = _photo(6, 9)
    settings = InferenceSettings(
        num_classes=K, crop=8, stride=6, mode="whole", base_scale=(9, 6), flip=True
    )
    got = infer(fn, photo, settings)
    x = normalize(photo)[None]
    expected = (fn(x).softmax(1) + fn(x.flip(-1)).flip(-1).softmax(1)) / 2
    torch.testing.assert_close(got, expected[0].detach())


def test_multiscale_slide_gives_probabilities_at_the_original_size():
    fn = _Tiny().eval()
    photo = _photo(21, 29)
    slide = dict(num_classes=K, crop=8, stride=6)
    ms = InferenceSettings(base_scale=(32, 24), scales=MS_SCALES, flip=True, **slide)
    probs = infer(fn, photo, ms)
    assert probs.shape == (K, 21, 29)
    torch.testing.assert_close(probs.sum(0), torch.ones(21, 29))
    assert (probs >= 0).all()
    # Single scale at the original size is the softmax of the sliding-window scores.
    single = InferenceSettings(base_scale=(29, 21), **slide)
    ref = slide_inference(fn, normalize(photo)[None], crop=8, stride=6, num_classes=K)
    torch.testing.assert_close(infer(fn, photo, single), ref[0].softmax(0))
    assert infer(fn, photo, single, out_size=(5, 7)).shape == (K, 5, 7)


def test_settings_have_no_geometry_of_their_own():
    # A class count alone would once have taken ADE20K's crop, stride and base scale.
    with pytest.raises(TypeError, match="crop"):
        InferenceSettings(num_classes=59)
    context = InferenceSettings.for_dataset(get_dataset("pascal-context-59"), 480)
    assert (context.crop, context.stride, context.base_scale) == (480, 320, (520, 520))


def test_bad_settings_and_photos_are_one_line_errors():
    with pytest.raises(SegvitError, match="mode"):
        InferenceSettings(num_classes=K, crop=8, stride=6, base_scale=(16, 12), mode="tiles")
    with pytest.raises(SegvitError, match="scales"):
        InferenceSettings(num_classes=K, crop=8, stride=6, base_scale=(16, 12), scales=())
    with pytest.raises(SegvitError, match="crop"):
        InferenceSettings(num_classes=K, stride=6, base_scale=(16, 12), crop=0)
    with pytest.raises(SegvitError, match=r"stride 9: expected 1 to the crop \(8\)"):
        InferenceSettings(num_classes=K, base_scale=(16, 12), crop=8, stride=9)
    with pytest.raises(SegvitError, match="window_batch"):
        InferenceSettings(num_classes=K, crop=8, stride=6, base_scale=(16, 12), window_batch=0)
    with pytest.raises(SegvitError, match="min_size"):
        InferenceSettings(num_classes=K, crop=8, stride=6, base_scale=(16, 12), min_size=0)
    settings = InferenceSettings(num_classes=K, base_scale=(16, 12), crop=8, stride=6)
    with pytest.raises(SegvitError, match="8-bit RGB photo, got ndarray of float32"):
        infer(_conv1x1(), _photo(8, 8).astype(np.float32), settings)
    with pytest.raises(SegvitError, match=r"\(H, W, 3\) photo, got \(8, 8\)"):
        infer_labels(_conv1x1(), _photo(8, 8)[..., 0], settings)


def test_settings_for_a_dataset_are_its_test_settings():
    ade = get_dataset("ade20k")
    ss = InferenceSettings.for_dataset(ade, 640)
    assert (ss.num_classes, ss.crop, ss.stride, ss.base_scale) == (150, 640, 608, (2048, 640))
    assert (ss.scales, ss.flip, ss.mode, ss.window_batch) == ((1.0,), False, "slide", 4)
    ms = InferenceSettings.for_dataset(ade, 512, multi_scale=True, stride=256, window_batch=1)
    assert (ms.stride, ms.base_scale, ms.scales, ms.flip) == (256, (2048, 512), MS_SCALES, True)
    assert ms.window_batch == 1
    assert ss.min_size is None  # ADE20K's test Resize has none
    assert InferenceSettings.for_dataset(get_dataset("pascal-context-59"), 480).min_size == 480
    assert InferenceSettings.for_dataset(get_dataset("coco-stuff-10k"), 512).min_size == 512


def test_ms_scales_are_the_papers():
    assert MS_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


SETTINGS = {
    "slide-ss": dict(mode="slide", crop=16, stride=11, base_scale=(48, 32)),
    "whole-ms-flip": dict(
        mode="whole", crop=16, stride=11, base_scale=(40, 24), scales=MS_SCALES, flip=True
    ),
    "slide-ms-flip": dict(
        mode="slide", crop=16, stride=11, base_scale=(40, 24), scales=MS_SCALES, flip=True
    ),
}


class _Sharp(nn.Module):
    """Labels that change every few pixels, with top-2 margins from large to tiny."""

    def __init__(self, num_classes: int = K) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x):
        return 3 * self.conv(x)


def _margin_where_labels_differ(labels: torch.Tensor, probs: torch.Tensor) -> float:
    """The largest gap between the two best mean probabilities at a pixel whose label is not
    the argmax of `probs` (K, H, W); 0 where none differs."""
    top2 = probs.topk(2, dim=0).values
    margins = (top2[0] - top2[1])[labels != probs.argmax(dim=0)]
    return float(margins.max()) if margins.numel() else 0.0


@pytest.mark.parametrize("size", [(67, 90), (131, 57)], ids=["67x90", "131x57"])
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("band_rows", [7, None])
def test_banded_labels_equal_the_full_argmax_but_for_near_ties(size, setting, band_rows):
    fn = _Sharp().eval()
    photo = _photo(*size, seed=size[0])
    settings = InferenceSettings(num_classes=K, **SETTINGS[setting])
    probs = infer(fn, photo, settings)
    labels = infer_labels(fn, photo, settings, band_rows=band_rows)
    assert labels.dtype == torch.int64 and labels.shape == size
    assert _margin_where_labels_differ(labels, probs) < 1e-5
    assert len(labels.unique()) > 1  # labels vary: a shifted band would show


@pytest.mark.parametrize("threads", [1, 3])
def test_banded_labels_on_other_thread_counts(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fn = _Sharp(num_classes=3).eval()
        photo = _photo(53, 97, seed=threads)
        settings = InferenceSettings(num_classes=3, **SETTINGS["whole-ms-flip"])
        labels = infer_labels(fn, photo, settings, band_rows=5)
        assert _margin_where_labels_differ(labels, infer(fn, photo, settings)) < 1e-5
    finally:
        torch.set_num_threads(before)


def _largest_allocation(run) -> int:
    """Bytes of the largest single allocation an operator made while `run` ran."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    return max(event.self_cpu_memory_usage for event in prof.events())


def test_infer_labels_makes_no_full_resolution_maps():
    fn = _Sharp(num_classes=16).eval()
    photo = _photo(160, 200)
    settings = InferenceSettings(
        num_classes=16,
        crop=8,
        stride=6,
        mode="whole",
        base_scale=(40, 24),
        scales=(0.5, 1.0),
        flip=True,
    )
    class_maps = 16 * 160 * 200 * 4  # bytes of K float32 maps at the original size
    assert _largest_allocation(lambda: infer(fn, photo, settings)) >= class_maps  # the probe works
    largest = _largest_allocation(lambda: infer_labels(fn, photo, settings, band_rows=10))
    assert largest < class_maps / 4
    assert largest < 3 * 160 * 200 * 4  # not even one float copy of the photo


def test_infer_labels_rejects_bad_band_rows():
    settings = InferenceSettings(num_classes=K, base_scale=(16, 12), crop=8, stride=6)
    with pytest.raises(SegvitError, match="band_rows"):
        infer_labels(_conv1x1(), _photo(8, 8), settings, band_rows=0)


@pytest.mark.parametrize("setting", ["slide-ss", "slide-ms-flip"])
def test_scores_kept_on_disk_give_the_same_labels(setting):
    fn = _Sharp().eval()
    photo = _photo(131, 57, seed=3)
    settings = InferenceSettings(num_classes=K, **SETTINGS[setting])
    for band_rows in (7, 131):  # bands read a few rows back; one band reads them all
        kept = infer_labels(fn, photo, settings, band_rows=band_rows)
        spilled = infer_labels(fn, photo, settings, band_rows=band_rows, keep_bytes=0)
        assert torch.equal(spilled, kept)


def test_prediction_scores_one_window_at_a_time_on_a_cpu():
    assert window_batch(torch.device("cpu")) == 1  # a 150-class head's maps stay out of RAM
    assert window_batch(torch.device("cuda")) == 4  # batching pays on a GPU


def test_scores_go_to_disk_only_past_keep_bytes(monkeypatch):
    import segvit.inference as inference

    made = []

    class Counted(SpilledScores):
        def __init__(self, scores, directory=None):
            made.append(scores.shape)
            super().__init__(scores, directory)

    monkeypatch.setattr(inference, "SpilledScores", Counted)
    fn = _Sharp().eval()
    photo = _photo(131, 57, seed=4)
    settings = InferenceSettings(num_classes=K, **SETTINGS["slide-ms-flip"])
    per_pass = [4 * K * h * w for h, w in (rescale_size(131, 57, (40, 24), r) for r in MS_SCALES)]
    infer_labels(fn, photo, settings, band_rows=7, keep_bytes=2 * sum(per_pass))  # all fit
    assert made == []
    infer_labels(fn, photo, settings, band_rows=7, keep_bytes=2 * sum(per_pass) - 1)
    assert len(made) == 2 * len(MS_SCALES)  # every pass spilled, flips included
