"""Bands of rows against aten's own full-image bilinear resize and softmax, bit for bit."""

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segvit.rowwise import (
    axis_taps,
    bands_match_full,
    fma32,
    recipe_for,
    resize_rows,
    scalar_pixels,
    softmax_rows,
)


@pytest.fixture
def threads():
    """Set torch's CPU thread count for one test, then restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _nearest_f32(exact: Fraction) -> np.float32:
    """The float32 nearest to `exact`, ties to even (float() rounds to float64 first, so the
    neighbours of that guess are compared exactly)."""
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess]
    candidates.append(np.nextafter(guess, np.float32(np.inf)))
    best = min(abs(Fraction(float(c)) - exact) for c in candidates)
    ties = [c for c in candidates if abs(Fraction(float(c)) - exact) == best]
    return min(ties, key=lambda c: int(np.float32(c).view(np.int32)) & 1)


def test_fma32_rounds_once_where_float64_rounds_twice():
    # (1 + 2^-23)(1 - 2^-23) = 1 - 2^-46; + (2^24 + 2) lies just below the float32 midpoint
    # 2^24 + 3, but float64 rounds the sum onto that midpoint, which then ties to 2^24 + 4.
    a, b, c = (torch.tensor([v], dtype=torch.float32) for v in (1 + 2**-23, 1 - 2**-23, 2**24 + 2))
    assert (a.double() * b.double() + c.double()).float().item() == 2**24 + 4
    assert fma32(a, b, c).item() == 2**24 + 2
    # The same among float32 subnormals (spacing 2^-149), where the float64 bit pattern of a
    # midpoint differs: c = 2^-127 + 2^-149, a * b = 2^-150 - 2^-190.
    a, b = (torch.tensor([(1 + s * 2**-20) * 2**-75], dtype=torch.float32) for s in (-1, 1))
    c = torch.tensor([2**-127 + 2**-149], dtype=torch.float32)
    assert (a.double() * b.double() + c.double()).float().item() == 2**-127 + 2**-148
    assert fma32(a, b, c).item() == 2**-127 + 2**-149


def test_fma32_matches_exact_arithmetic():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, generator=gen)
    b = torch.rand(400, generator=gen)
    c = -a * b  # heavy cancellation: results far smaller than the operands
    c[:200] = torch.randn(200, generator=gen) * 2.0 ** torch.randint(-30, 30, (200,), generator=gen)
    a[300:] *= 1e-38  # float32 subnormal territory, where the midpoints differ
    c[300:] = torch.randn(100, generator=gen) * 1e-38
    out = fma32(a, b, c)
    assert (out[300:].abs() < 2.0**-126).sum() > 20
    for x, y, z, got in zip(a.tolist(), b.tolist(), c.tolist(), out.tolist(), strict=True):
        want = _nearest_f32(Fraction(x) * Fraction(y) + Fraction(z))
        assert np.float32(got) == want


@pytest.mark.parametrize(("n_in", "n_out"), [(7, 300), (300, 130), (61, 200), (512, 1500)])
def test_axis_taps_are_the_weights_aten_uses(n_in, n_out):
    # Resizing one-hot rows reads the kernel's weights back: row j of the output column d is
    # w0[d] where i0[d] == j and w1[d] where i1[d] == j (their sum where both are j).
    eye = torch.eye(n_in)[None, :, :, None]  # (1, n_in channels, n_in, 1)
    probe = F.interpolate(eye, size=(n_out, 1), mode="bilinear", align_corners=False)[0, :, :, 0]
    i0, i1, w0, w1 = axis_taps(n_in, n_out, fused=recipe_for("cpu").fused_taps)
    d = torch.arange(n_out)
    split = i0 != i1
    assert torch.equal(probe[i0[split], d[split]], w0[split])
    assert torch.equal(probe[i1[split], d[split]], w1[split])
    assert torch.equal(probe[i0[~split], d[~split]], (w0 + w1)[~split])
    assert ((probe != 0).sum(0) <= 2).all()


@pytest.mark.parametrize(
    ("src", "out"),
    [
        ((9, 11), (70, 93)),  # up both ways
        ((64, 50), (23, 130)),  # down in H, up in W
        ((37, 53), (301, 53)),  # width kept
        ((90, 30), (90, 77)),  # height kept
        ((5, 120), (171, 7)),  # extreme aspect
    ],
)
@pytest.mark.parametrize("band", [1, 4, 13])
def test_resize_rows_are_the_full_resize_rows(src, out, band, threads):
    # torch's own bilinear kernel rounds differently with one thread than with several; the
    # rows reproduce the multi-threaded kernel, which a 2-core CPU and every GPU host run.
    threads(2)
    gen = torch.Generator().manual_seed(sum(src) + band)
    scores = torch.randn(2, 3, *src, generator=gen) * 5
    full = F.interpolate(scores, size=out, mode="bilinear", align_corners=False)
    rows = [resize_rows(scores, out, r, min(r + band, out[0])) for r in range(0, out[0], band)]
    assert torch.equal(torch.cat(rows, dim=2), full)
    # Plain float32 arithmetic along H is not the same: the test can tell.
    i0, i1, w0, w1 = axis_taps(src[0], out[0])
    across = F.interpolate(scores, size=(src[0], out[1]), mode="bilinear", align_corners=False)
    plain = across[:, :, i0] * w0[:, None] + across[:, :, i1] * w1[:, None]
    assert src[0] == out[0] or not torch.equal(plain, full)


def test_small_outputs_and_three_classes_on_one_thread_are_not_banded(threads):
    cpu = torch.device("cpu")
    assert not bands_match_full(cpu, (60, 68), 5)  # H + W <= 128: another aten kernel
    assert bands_match_full(cpu, (60, 69), 5)
    threads(1)
    assert not bands_match_full(cpu, (500, 700), 3)
    assert bands_match_full(cpu, (500, 700), 4)


def test_scalar_pixels_follow_the_thread_split():
    # 20 positions on 2 threads: chunks 0..9 and 10..19; 8 at a time leaves 2 per chunk.
    assert scalar_pixels(1, 20, width=8, threads=2) == (8, 9, 18, 19)
    # 2 images of 7 on one thread: each image's piece leaves 7 % 4 = 3.
    assert scalar_pixels(2, 7, width=4, threads=1) == (4, 5, 6, 11, 12, 13)
    # 3 threads over 2 x 10: chunks 0..6, 7..13, 14..19; the middle one is cut at image 2's
    # start into 7..9 (3 left: scalar) and 10..13 (one group); the last leaves 18, 19.
    assert scalar_pixels(2, 10, width=4, threads=3) == (4, 5, 6, 7, 8, 9, 18, 19)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize(("B", "K", "H", "W"), [(1, 150, 37, 41), (2, 19, 29, 23)])
def test_softmax_rows_are_the_full_softmax_rows(threads, num_threads, B, K, H, W):
    threads(num_threads)
    gen = torch.Generator().manual_seed(K + num_threads)
    x = torch.randn(B, K, H, W, generator=gen) * 5
    full = x.softmax(dim=1)
    for band in (1, 5, 16):
        for start in range(0, H, band):
            rows = x[:, :, start : start + band]
            assert torch.equal(
                softmax_rows(rows, height=H, start=start), full[:, :, rows_of(start, band, H)]
            )


def rows_of(start: int, band: int, height: int) -> slice:
    return slice(start, min(start + band, height))


def test_plain_band_softmax_differs_where_aten_used_its_scalar_loop(threads):
    # Why softmax_rows exists: a band's own softmax puts other pixels in the scalar loop.
    threads(2)
    x = torch.randn(1, 150, 37, 41, generator=torch.Generator().manual_seed(3)) * 5
    full = x.softmax(dim=1)
    differ = sum(
        int((x[:, :, s : s + 16].softmax(dim=1) != full[:, :, s : s + 16]).sum())
        for s in range(0, 37, 16)
    )
    assert differ > 0
