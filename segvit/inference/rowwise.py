"""Rows of a full-image bilinear resize, from the rows of its source that they read.

`segvit.inference.infer_labels` turns low-resolution scores into labels for a large photo one
band of output rows at a time, so that no (K, H, W) tensor ever exists. A band needs only the
few source rows its bilinear taps read; those may come from memory or from a temporary file
(`SpilledScores`) when the passes' scores would take too much memory.

A band is resized along W by `F.interpolate` itself, then along H with the weights that
`F.interpolate` gives those rows (read back from it, see `row_taps`). Its floats equal the
full-image resize's but for the rounding of the last sum (a bit or so), which is all the
labels need (see infer_labels); nothing here depends on how a kernel rounds.
"""

from __future__ import annotations

import math
import os
import tempfile

import torch
import torch.nn.functional as F
from torch import Tensor

from segvit.errors import SegvitError

# References: PyTorch's documentation of F.interpolate (align_corners=False: half-pixel
# centres, source y = (y_out + 0.5) * in / out - 0.5, clamped at the first row).


class SpilledScores:
    """(B, K, h, w) float32 scores kept in an unnamed temporary file instead of memory, read
    back a band of source rows at a time (`rows`). Rows are stored one after another, each
    (B, K, w), so a band's rows are one contiguous read; the file is written in blocks, so
    no second copy of the scores is made. The file vanishes when closed or collected."""

    def __init__(self, scores: Tensor, directory: str | None = None) -> None:
        B, K, h, w = scores.shape
        self.shape, self.device = scores.shape, scores.device
        self._row_bytes = B * K * w * 4
        block = max(1, (16 * 2**20) // self._row_bytes)  # rows per write
        try:
            self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (kept open)
        except OSError as err:
            raise self._no_room(h, directory, err) from err
        try:
            for r0 in range(0, h, block):
                rows = scores[:, :, r0 : r0 + block].permute(2, 0, 1, 3)  # (n, B, K, w)
                data = rows.to("cpu", torch.float32).contiguous().numpy()
                self._file.write(memoryview(data).cast("B"))
            self._file.flush()
        except OSError as err:
            self._file.close()
            raise self._no_room(h, directory, err) from err

    def _no_room(self, h: int, directory: str | None, err: OSError) -> SegvitError:
        where = directory or tempfile.gettempdir()
        return SegvitError(
            f"inference: cannot keep {h * self._row_bytes / 2**20:.0f} MiB of scores in "
            f"{where} ({err.strerror or err}); free space there or set TMPDIR"
        )

    def rows(self, lo: int, hi: int) -> Tensor:
        """Rows lo:hi as a (B, K, hi - lo, w) tensor on the scores' device."""
        B, K, _, w = self.shape
        out = torch.empty((hi - lo, B, K, w), dtype=torch.float32)
        view = memoryview(out.numpy()).cast("B")
        if os.preadv(self._file.fileno(), [view], lo * self._row_bytes) != len(view):
            raise SegvitError(f"inference: the scores' temporary file ended before row {hi}")
        return out.permute(1, 2, 0, 3).to(self.device)

    def close(self) -> None:
        self._file.close()


def row_taps(
    n_in: int, n_out: int, start: int, stop: int, device: torch.device | str = "cpu"
) -> tuple[Tensor, ...]:
    """(i0, i1, w0, w1) of output rows start:stop of F.interpolate's bilinear resize of n_in
    rows to n_out (align_corners=False): row r is w0[r] * source[i0[r]] + w1[r] * source[i1[r]].

    The weights are F.interpolate's own on `device`: the resize is linear, so resizing one-hot
    source rows (one per channel) reads them back; no re-derived arithmetic of the kernel.
    """
    # The source rows these outputs can read (half-pixel centres), with a row to spare each side.
    lo = max(0, math.floor((start + 0.5) * n_in / n_out - 0.5) - 1)
    hi = min(n_in, math.floor((stop - 0.5) * n_in / n_out - 0.5) + 3)
    onehot = torch.zeros((1, hi - lo, n_in, 1), device=device)
    onehot[0, torch.arange(hi - lo, device=device), torch.arange(lo, hi, device=device), 0] = 1
    weights = F.interpolate(onehot, size=(n_out, 1), mode="bilinear", align_corners=False)
    weights = weights[0, :, start:stop, 0]  # (n, R): source row lo + j's weight in each output
    used = weights != 0
    first = used.int().argmax(dim=0)  # the first and last source row each output reads
    last = len(used) - 1 - used.flip(0).int().argmax(dim=0)
    out = torch.arange(stop - start, device=device)
    w1 = torch.where(last != first, weights[last, out], 0.0)  # one row read: it has w0 alone
    return first + lo, last + lo, weights[first, out], w1


def resize_rows(
    scores: Tensor | SpilledScores, size: tuple[int, int], start: int, stop: int
) -> Tensor:
    """Rows start:stop of F.interpolate(scores, size, "bilinear", align_corners=False), to the
    last bit or so: (B, K, stop - start, W) float32 from (B, K, h, w) scores, in memory or
    on disk (only the few source rows the band reads are read)."""
    _, _, h, w = scores.shape
    H, W = size
    i0, i1, w0, w1 = row_taps(h, H, start, stop, scores.device)
    lo, hi = int(i0.min()), int(i1.max()) + 1
    rows = scores.rows(lo, hi) if isinstance(scores, SpilledScores) else scores[:, :, lo:hi]
    if w != W:  # along W by F.interpolate itself (height kept), then along H by the taps
        rows = F.interpolate(rows, size=(hi - lo, W), mode="bilinear", align_corners=False)
    band = rows[:, :, i0 - lo].mul_(w0[:, None])  # gathers are copies: scaled in place
    return band.add_(rows[:, :, i1 - lo].mul_(w1[:, None]))  # (B, K, R, W)
