"""Sliding window, whole image, multi-scale and flip inference over tiny score functions."""

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from segvit.errors import SegvitError
from segvit.inference import (
    MS_SCALES,
    infer,
    infer_labels,
    rescale_size,
    slide_inference,
    whole_inference,
    window_batch,
    window_grid,
)
from segvit.rowwise import SpilledScores

K = 4


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


def test_infer_resizes_to_the_scale_and_back():
    sizes = []

    def fn(x):
        sizes.append(tuple(x.shape[-2:]))
        return torch.zeros(x.shape[0], K, *x.shape[-2:])

    image = torch.randn(1, 3, 30, 40)
    probs = infer(fn, image, num_classes=K, mode="whole", base_scale=(80, 20), scales=(1.0, 0.5))
    # (80, 20): factor min(80/40, 20/30) -> 20x27; (40, 10): factor 1/3 -> 10x13.
    assert sizes == [(20, 27), (10, 13)]
    assert probs.shape == (1, K, 30, 40)
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / K))


@pytest.mark.parametrize(
    "mode_kw", [dict(mode="whole"), dict(mode="slide", crop=8, stride=8)], ids=["whole", "slide"]
)
def test_flip_averaging_is_symmetric(mode_kw):
    # With a mirror-symmetric window grid (here two 8-wide windows over 16 columns) a
    # score fn and its mirror image give the same flip-averaged probabilities.
    fn = _Tiny().eval()

    def mirrored(x):
        return fn(x.flip(-1)).flip(-1)

    image = torch.randn(1, 3, 12, 16)
    kw = dict(num_classes=K, base_scale=(16, 12), flip=True, **mode_kw)
    a = infer(fn, image, **kw)
    torch.testing.assert_close(a, infer(mirrored, image, **kw))
    torch.testing.assert_close(infer(fn, image.flip(-1), **kw), a.flip(-1))
    no_flip = infer(fn, image, **{**kw, "flip": False})
    assert not torch.allclose(a, no_flip)  # the flipped pass did contribute


def test_flip_pass_is_the_mirrored_probabilities_averaged_in():
    fn = _Tiny().eval()
    image = torch.randn(1, 3, 6, 9)
    got = infer(fn, image, num_classes=K, mode="whole", base_scale=(9, 6), flip=True)
    expected = (fn(image).softmax(1) + fn(image.flip(-1)).flip(-1).softmax(1)) / 2
    torch.testing.assert_close(got, expected.detach())


def test_multiscale_slide_gives_probabilities_at_the_original_size():
    fn = _Tiny().eval()
    image = torch.randn(1, 3, 21, 29)
    probs = infer(
        fn,
        image,
        num_classes=K,
        mode="slide",
        crop=8,
        stride=6,
        base_scale=(32, 24),
        scales=MS_SCALES,
        flip=True,
    )
    assert probs.shape == (1, K, 21, 29)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 21, 29))
    assert (probs >= 0).all()
    # Single scale at the original size is the softmax of the sliding-window scores.
    single = infer(fn, image, num_classes=K, crop=8, stride=6, base_scale=(29, 21))
    ref = slide_inference(fn, image, num_classes=K, crop=8, stride=6).softmax(1)
    torch.testing.assert_close(single, ref)
    out = infer(fn, image, num_classes=K, crop=8, stride=6, base_scale=(29, 21), out_size=(5, 7))
    assert out.shape == (1, K, 5, 7)


def test_infer_rejects_bad_options():
    fn = _conv1x1()
    image = torch.randn(1, 3, 8, 8)
    with pytest.raises(SegvitError, match="mode"):
        infer(fn, image, num_classes=K, mode="tiles")
    with pytest.raises(SegvitError, match="scales"):
        infer(fn, image, num_classes=K, scales=())
    with pytest.raises(SegvitError, match="crop"):
        infer(fn, image, num_classes=K, crop=0)
    with pytest.raises(SegvitError, match="image"):
        infer(fn, image[0], num_classes=K)


def test_ms_scales_are_the_papers():
    assert MS_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


class _NearTie(nn.Module):
    """Classes that nearly tie everywhere: the argmax turns on the last bits of the averaged
    probabilities, so any rounding difference between two paths would change labels."""

    def __init__(self, num_classes: int = K) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.common = nn.Conv2d(3, 1, 3, padding=1)
        self.detail = nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x):
        return 4 * self.common(x).tanh() + 2e-7 * self.detail(x).tanh()


SETTINGS = {
    "slide-ss": dict(mode="slide", crop=16, stride=11, base_scale=(48, 32)),
    "whole-ms-flip": dict(mode="whole", base_scale=(40, 24), scales=MS_SCALES, flip=True),
    "slide-ms-flip": dict(
        mode="slide", crop=16, stride=11, base_scale=(40, 24), scales=MS_SCALES, flip=True
    ),
}


def test_near_tie_labels_change_with_one_ulp():
    # The check below has teeth: one ulp on some classes' probabilities moves many labels.
    fn = _NearTie().eval()
    probs = infer(fn, torch.randn(1, 3, 67, 90), num_classes=K, **SETTINGS["slide-ss"])
    bumped = probs.clone()
    bumped[:, ::2] = torch.nextafter(probs[:, ::2], torch.tensor(1.0))
    assert (bumped.argmax(1) != probs.argmax(1)).float().mean() > 0.05


@pytest.mark.parametrize("size", [(67, 90), (131, 57)], ids=["67x90", "131x57"])
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("band_rows", [7, None])
def test_infer_labels_equal_infer_argmax(size, setting, band_rows):
    fn = _NearTie().eval()
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
    expected = infer(fn, image, num_classes=K, **SETTINGS[setting]).argmax(dim=1)
    labels = infer_labels(fn, image, num_classes=K, band_rows=band_rows, **SETTINGS[setting])
    assert labels.dtype == torch.int64 and labels.shape == (1, *size)
    assert torch.equal(labels, expected)


@pytest.mark.parametrize("threads", [1, 3])
def test_infer_labels_equal_infer_argmax_on_other_thread_counts(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fn = _NearTie(num_classes=3).eval()  # 3 classes on one thread: done as one band
        image = torch.randn(2, 3, 53, 97, generator=torch.Generator().manual_seed(threads))
        kw = dict(num_classes=3, **SETTINGS["whole-ms-flip"])
        expected = infer(fn, image, **kw).argmax(dim=1)
        assert torch.equal(infer_labels(fn, image, band_rows=5, **kw), expected)
    finally:
        torch.set_num_threads(before)


def test_small_images_are_one_band_and_still_equal():
    fn = _NearTie().eval()
    image = torch.randn(1, 3, 40, 50)  # H + W <= 128: aten resizes it with another kernel
    kw = dict(num_classes=K, **SETTINGS["slide-ms-flip"])
    assert torch.equal(infer_labels(fn, image, band_rows=3, **kw), infer(fn, image, **kw).argmax(1))


def _largest_allocation(run) -> int:
    """Bytes of the largest single allocation an operator made while `run` ran."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    return max(event.self_cpu_memory_usage for event in prof.events())


def test_infer_labels_makes_no_full_resolution_class_maps():
    fn = _NearTie(num_classes=16).eval()
    image = torch.randn(1, 3, 160, 200)
    kw = dict(num_classes=16, mode="whole", base_scale=(40, 24), scales=(0.5, 1.0), flip=True)
    class_maps = 16 * 160 * 200 * 4  # bytes of K float32 maps at the original size
    assert _largest_allocation(lambda: infer(fn, image, **kw)) >= class_maps  # the probe works
    largest = _largest_allocation(lambda: infer_labels(fn, image, band_rows=10, **kw))
    assert largest < class_maps / 4


def test_infer_labels_rejects_bad_band_rows():
    with pytest.raises(SegvitError, match="band_rows"):
        infer_labels(_conv1x1(), torch.randn(1, 3, 8, 8), num_classes=K, band_rows=0)


@pytest.mark.parametrize("setting", ["slide-ss", "slide-ms-flip"])
def test_scores_kept_on_disk_give_the_same_labels(setting):
    fn = _NearTie().eval()
    image = torch.randn(1, 3, 131, 57, generator=torch.Generator().manual_seed(3))
    kw = dict(num_classes=K, **SETTINGS[setting])
    expected = infer(fn, image, **kw).argmax(dim=1)
    for band_rows in (7, 131):  # bands read a few rows back; one band reads them all
        assert torch.equal(
            infer_labels(fn, image, band_rows=band_rows, keep_bytes=0, **kw), expected
        )


def test_spilled_scores_read_back_any_rows(tmp_path):
    scores = torch.randn(2, 5, 9, 4)
    spilled = SpilledScores(scores, str(tmp_path))
    try:
        assert torch.equal(spilled.rows(3, 7), scores[:, :, 3:7])
        assert torch.equal(spilled.full(), scores) and spilled.shape == scores.shape
        assert not list(tmp_path.iterdir())  # unnamed: nothing to leave behind on a crash
    finally:
        spilled.close()


def test_no_room_for_the_scores_is_one_line(tmp_path):
    message = r"cannot keep 0 MiB of scores in .*nowhere .*set TMPDIR"
    with pytest.raises(SegvitError, match=message):
        SpilledScores(torch.zeros(1, 2, 3, 4), str(tmp_path / "nowhere"))


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
    fn = _NearTie().eval()
    image = torch.randn(1, 3, 131, 57, generator=torch.Generator().manual_seed(4))
    kw = dict(num_classes=K, band_rows=7, **SETTINGS["slide-ms-flip"])
    per_pass = [4 * K * h * w for h, w in (rescale_size(131, 57, (40, 24), r) for r in MS_SCALES)]
    infer_labels(fn, image, keep_bytes=2 * sum(per_pass), **kw)  # all 12 passes fit exactly
    assert made == []
    infer_labels(fn, image, keep_bytes=2 * sum(per_pass) - 1, **kw)
    assert len(made) == 2 * len(MS_SCALES)  # every pass spilled, flips included
