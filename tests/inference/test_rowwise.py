"""Bands of rows against F.interpolate's own full-image bilinear resize."""

import pytest
import torch
import torch.nn.functional as F

from segvit.errors import SegvitError
from segvit.inference.rowwise import SpilledScores, resize_rows, row_taps


@pytest.fixture
def threads():
    """Set torch's CPU thread count for one test, then restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_row_taps_follow_the_half_pixel_rule():
    # 2 rows -> 4: source y = (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25
    # (past the last row: row 1 alone).
    i0, i1, w0, w1 = row_taps(2, 4, 0, 4)
    assert i0.tolist() == [0, 0, 0, 1] and i1.tolist() == [0, 1, 1, 1]
    assert w0.tolist() == [1.0, 0.75, 0.25, 1.0] and w1.tolist() == [0.0, 0.25, 0.75, 0.0]
    # 6 rows -> 3, output rows 1:3: y = (d + 0.5) * 2 - 0.5 = 2.5, 4.5.
    i0, i1, w0, w1 = row_taps(6, 3, 1, 3)
    assert i0.tolist() == [2, 4] and i1.tolist() == [3, 5]
    assert w0.tolist() == [0.5, 0.5] and w1.tolist() == [0.5, 0.5]


def _spacings(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor) -> float:
    """The largest difference of a and b, in float32 spacings at the scores' magnitude (a
    sum of two products is exact to about that, whatever its own size)."""
    return float((a - b).abs().max() / (torch.finfo(torch.float32).eps * scores.abs().max()))


@pytest.mark.parametrize(
    ("src", "out"),
    [
        ((9, 11), (70, 93)),  # up both ways
        ((64, 50), (23, 130)),  # down in H, up in W
        ((37, 53), (301, 53)),  # width kept
        ((90, 30), (90, 77)),  # height kept
        ((5, 120), (171, 7)),  # extreme aspect
        ((128, 170), (1013, 1351)),  # a photo's worth: positions far from 0
    ],
)
@pytest.mark.parametrize("band", [1, 4, 13])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_bands_are_the_full_resize_to_a_bit_or_two(src, out, band, threads, num_threads):
    threads(num_threads)
    gen = torch.Generator().manual_seed(sum(src) + band)
    scores = torch.randn(2, 3, *src, generator=gen) * 5
    full = F.interpolate(scores, size=out, mode="bilinear", align_corners=False)
    rows = [resize_rows(scores, out, r, min(r + band, out[0])) for r in range(0, out[0], band)]
    assert _spacings(torch.cat(rows, dim=2), full, scores) <= 2


def test_spilled_scores_give_the_same_bands_reading_only_their_rows(tmp_path, monkeypatch):
    scores = torch.randn(1, 4, 40, 30, generator=torch.Generator().manual_seed(1))
    spilled = SpilledScores(scores, str(tmp_path))
    read = []
    original = SpilledScores.rows
    monkeypatch.setattr(SpilledScores, "rows", lambda self, lo, hi: read.append(hi - lo) or
                        original(self, lo, hi))  # fmt: skip
    try:
        for start in range(0, 170, 9):
            stop = min(start + 9, 170)
            band = resize_rows(spilled, (170, 120), start, stop)
            assert torch.equal(band, resize_rows(scores, (170, 120), start, stop))
    finally:
        spilled.close()
    assert max(read) <= 9 * 40 / 170 + 4  # the band's source rows and a row to spare each side


def test_spilled_scores_read_back_any_rows(tmp_path):
    scores = torch.randn(2, 5, 9, 4)
    spilled = SpilledScores(scores, str(tmp_path))
    try:
        assert torch.equal(spilled.rows(3, 7), scores[:, :, 3:7])
        assert torch.equal(spilled.rows(0, 9), scores) and spilled.shape == scores.shape
        assert not list(tmp_path.iterdir())  # unnamed: nothing to leave behind on a crash
    finally:
        spilled.close()


def test_no_room_for_the_scores_is_one_line(tmp_path):
    message = r"cannot keep 0 MiB of scores in .*nowhere .*set TMPDIR"
    with pytest.raises(SegvitError, match=message):
        SpilledScores(torch.zeros(1, 2, 3, 4), str(tmp_path / "nowhere"))
