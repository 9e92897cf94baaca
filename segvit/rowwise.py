"""Rows of a full-image bilinear resize and softmax: the very floats aten writes there.

`segvit.inference.infer_labels` turns low-resolution scores into labels for a large photo one
band of rows at a time, so that no (K, H, W) tensor ever exists. Its labels equal those of the
full-image path (`infer(...).argmax(1)`) bit for bit because every band holds exactly the
floats the full-image operations would have written into those rows. Two facts about aten
make that possible; tests/test_rowwise.py checks both against the operations themselves.

- Bilinear resize (`F.interpolate`, align_corners=False; CPU generic kernel, CUDA kernel):
  each output is interpolated along W first, then along H as fma(t0, w0, t1 * w1), with the
  source position fma(in / out, dst + 0.5, -0.5). A band interpolates along W with
  F.interpolate itself (full width, rows kept, which aten computes as t * 1 + t * 0 = t) and
  along H with the same taps and a correctly rounded fused multiply-add. Which rounding
  recipe a device's kernel follows is found once per device type on a probe (RECIPES).
- Softmax over dim 1 (CPU): aten runs a SIMD loop over pixels, but the last few pixels of each
  thread's share of the tensor take a scalar loop whose exp can differ in the last bit. A band
  is computed all-SIMD, then the pixels that were scalar in the full tensor are redone the
  scalar way.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from segvit.errors import SegvitError

# References: PyTorch aten/src/ATen/native/cpu/UpSampleKernel.cpp (Interpolate, HelperInterpLinear,
# upsample_bilinear2d_kernel_impl_float), aten/src/ATen/native/UpSample.h
# (area_pixel_compute_source_index), aten/src/ATen/native/cuda/UpSampleBilinear2d.cu and
# aten/src/ATen/native/cpu/SoftMaxKernel.cpp (_vec_softmax); Boldo & Melquiond, "Emulation of
# FMA and correctly rounded sums: proved algorithms using rounding to odd" (IEEE TC 2008).

_LOW29 = (1 << 29) - 1  # float64 mantissa bits below float32 precision
_HALF29 = 1 << 28  # ...exactly half a float32 ulp: a float64 on a float32 midpoint
_TINY = 2.0**-125  # below this a float32 result may be subnormal, where midpoints differ


@dataclass(frozen=True)
class Recipe:
    """How a bilinear kernel rounds along H (W is done by the kernel itself)."""

    fused_taps: bool  # source position as one rounding of scale * (dst + 0.5) - 0.5
    combine: Literal["fma0", "fma1", "plain"]  # fma(t0, w0, t1*w1), fma(t1, w1, t0*w0), or
    # t0*w0 + t1*w1 rounded three times (a kernel built without FMA contraction)


# Candidates in the order tried: gcc/nvcc contract `t0 * w0 + t1 * w1` into one of the fma
# forms; a build without FMA (x86-64 baseline) rounds each operation.
RECIPES: tuple[Recipe, ...] = (Recipe(True, "fma0"), Recipe(True, "fma1"), Recipe(False, "plain"))


@functools.lru_cache(maxsize=32)
def axis_taps(n_in: int, n_out: int, *, fused: bool = True) -> tuple[Tensor, ...]:
    """(i0, i1, w0, w1) per output index of aten's linear resize along one axis.

    Source position src = max(scale * (dst + 0.5) - 0.5, 0) in float32 with scale = n_in / n_out
    (float32); i0 = min(floor(src), n_in - 1), i1 = i0 + 1 inside the input (else i0),
    w1 = src - i0 clamped to [0, 1], w0 = 1 - w1. Equal sizes: i1 = i0 = dst, w = (1, 0).
    """
    if n_in == n_out:
        i = torch.arange(n_out)
        return i, i, torch.ones(n_out), torch.zeros(n_out)
    scale = np.float32(n_in) / np.float32(n_out)
    dst = np.arange(n_out, dtype=np.float64) + 0.5
    if fused:  # scale * (dst + 0.5) is exact in float64; the one rounding is the cast
        src = (np.float64(scale) * dst - 0.5).astype(np.float32)
    else:
        src = (scale * dst.astype(np.float32)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
    i1 = i0 + (i0 < n_in - 1)
    return (
        torch.from_numpy(i0),
        torch.from_numpy(i1),
        torch.from_numpy(np.float32(1) - w1),
        torch.from_numpy(w1),
    )


class Workspace:
    """Named buffers reused band after band: fresh large tensors would each be page-faulted in
    again (otherwise much of what a band's operations cost)."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device) -> Tensor:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype or buf.device != device:
            self._buffers.pop(name, None)  # free the old one before making its successor
            buf = self._buffers[name] = torch.empty(shape, dtype=dtype, device=device)
        return buf

    def classes_first(self, shape: tuple[int, int, int, int], device) -> tuple[Tensor, Tensor]:
        """For a band of `shape` (B, K, R, W): a zero-padded (1, K, n) float32 buffer, which
        `softmax_rows` hands to aten's softmax as it is, and its (K, B, R, W) view."""
        B, K, R, W = shape
        n = B * R * W
        # Whole SIMD groups in each thread's share of the buffer: see softmax_rows.
        pad = -n % (_simd_width() * torch.get_num_threads())
        flat = self.take("flat", (1, K, n + pad), torch.float32, device)
        flat[:, :, n:].zero_()
        return flat, flat[0, :, :n].view(K, B, R, W)


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

    def full(self) -> Tensor:
        """All the scores, contiguous (B, K, h, w)."""
        return self.rows(0, self.shape[2]).contiguous()

    def close(self) -> None:
        self._file.close()


def _round_sum(p: Tensor, q: Tensor) -> Tensor:
    """float32 nearest to p + q (float64): TwoSum's exact error decides a rounding to odd,
    after which the rounding to float32 is correct (53 >= 24 + 2 bits)."""
    s = p + q
    bv = s - p
    err = (p - (s - bv)) + (q - bv)  # p + q == s + err exactly
    even = s.view(torch.int64).bitwise_and(1) == 0
    away = torch.where(err > 0, math.inf, -math.inf).to(s)
    return torch.where((err != 0) & even, torch.nextafter(s, away), s).float()


def _midpoints(acc: Tensor) -> tuple[Tensor, ...]:
    """Indices where float64 `acc` rounded to float32 may be off: `acc` on a float32 midpoint
    (a double rounding), or a result that is subnormal in float32 (other midpoints). Exact
    ties are found too; redoing them changes nothing. Overwrites `acc` (spent by then)."""
    magnitude = acc.abs_()  # the midpoint test is blind to the sign
    tiny = magnitude < _TINY if magnitude.amin() < _TINY else None  # rarely needed
    hazard = magnitude.view(torch.int64).bitwise_and_(_LOW29) == _HALF29
    if tiny is not None:
        hazard |= tiny
    return hazard.nonzero(as_tuple=True)


def fma32(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """a * b + c with one rounding to float32 (float32 inputs, broadcast to a's shape).

    a * b is exact in float64 and the sum is rounded once there; rounding that float64 to
    float32 is then correct except where `_midpoints` says, and those rare values are redone.
    """
    acc = a.double().mul_(b.double()).add_(c)
    out = acc.float()
    at = _midpoints(acc)
    p = a.expand_as(out)[at].double() * b.expand_as(out)[at].double()
    out[at] = _round_sum(p, c.expand_as(out)[at].double())
    return out


def _combine_rows(
    rows: Tensor, taps: tuple[Tensor, ...], how: str, out: Tensor, ws: Workspace
) -> None:
    """Interpolate source rows (n, K, B, W) along H at the taps into `out` (K, B, R, W)
    float32; `how` is the kernel's recipe (see Recipe)."""
    i0, i1, w0, w1 = (t.to(rows.device) for t in taps)
    if how == "fma1":  # the same fused form with the two taps' roles swapped
        i0, i1, w0, w1 = i1, i0, w1, w0
    first, other = i0.tolist(), i1.tolist()  # plain ints: rows[j] is then a view, not a copy
    R = len(first)
    row = (1, 1, R, 1)
    if how == "plain":
        second = ws.take("second", out.shape, torch.float32, rows.device)
        for r in range(R):  # gathers: a tap's row is one contiguous block
            out[:, :, r].copy_(rows[first[r]])
            torch.mul(rows[other[r]], w1[r], out=second[:, :, r])
        out.mul_(w0.view(row)).add_(second)
        return
    acc = ws.take("acc", out.shape, torch.float64, rows.device)
    second = ws.take("second", out.shape, torch.float64, rows.device)
    for r in range(R):  # gathers (a tap's row is one contiguous block), widened to float64
        acc[:, :, r].copy_(rows[first[r]])
        # float32 inputs: multiplied in float32 (the product the kernel rounds), then widened
        torch.mul(rows[other[r]], w1[r], out=second[:, :, r])
    acc.mul_(w0.double().view(row))  # exact: 24 x 24 bits < 53
    out.copy_(acc.add_(second))  # the one rounding in float64, then to float32
    k, b, r, x = _midpoints(acc)
    if len(r):
        p = rows[i0[r], k, b, x].double() * w0.double()[r]
        q = rows[i1[r], k, b, x] * w1[r]  # the same float32 product as above
        out[k, b, r, x] = _round_sum(p, q.double())


def _resize_rows(
    scores: Tensor | SpilledScores,
    size: tuple[int, int],
    start: int,
    stop: int,
    recipe: Recipe,
    workspace: Workspace | None = None,
) -> Tensor:
    B, K, h, w = scores.shape
    H, W = size
    i0, i1, w0, w1 = (t[start:stop] for t in axis_taps(h, H, fused=recipe.fused_taps))
    lo, hi = int(i0.min()), int(i1.max()) + 1
    # (B, K, n, w): the source rows the band reads
    rows = scores.rows(lo, hi) if isinstance(scores, SpilledScores) else scores[:, :, lo:hi]
    rows = rows.contiguous()
    if w != W:
        n = hi - lo
        # aten's CPU switches to another kernel when out_h + out_w <= 128; zero rows keep
        # this call on the generic one (rows are independent when the height is kept).
        rows = F.pad(rows, (0, 0, 0, max(0, 129 - W - n)))
        rows = F.interpolate(rows, size=(rows.shape[2], W), mode="bilinear", align_corners=False)
        rows = rows[:, :, :n]  # (B, K, n, W)
    if h == H:
        return rows
    ws = workspace or Workspace()
    _, out = ws.classes_first((B, K, stop - start, W), rows.device)
    rows = rows.permute(2, 1, 0, 3).contiguous()  # (n, K, B, W): a tap's row is one block
    _combine_rows(rows, (i0 - lo, i1 - lo, w0, w1), recipe.combine, out, ws)
    return out.transpose(0, 1)  # (B, K, R, W)


@functools.cache
def recipe_for(device_type: str) -> Recipe:
    """The first of RECIPES that reproduces F.interpolate on probes, once per device type."""
    gen = torch.Generator().manual_seed(0)
    probes = [((7, 9), (61, 80)), ((50, 9), (17, 130)), ((33, 40), (97, 35))]
    tensors = [torch.randn(1, 2, *src, generator=gen).to(device_type) * 4 for src, _ in probes]
    for recipe in RECIPES:
        if all(
            torch.equal(
                _resize_rows(x, out, 0, out[0], recipe),
                F.interpolate(x, size=out, mode="bilinear", align_corners=False),
            )
            for x, (_, out) in zip(tensors, probes, strict=True)
        ):
            return recipe
    warnings.warn(
        f"bilinear resize on {device_type}: no known rounding recipe matches F.interpolate; "
        "banded labels may differ from the full-image ones where classes nearly tie",
        stacklevel=2,
    )
    return RECIPES[0]


def resize_rows(
    scores: Tensor | SpilledScores,
    size: tuple[int, int],
    start: int,
    stop: int,
    *,
    workspace: Workspace | None = None,
) -> Tensor:
    """Rows start:stop of F.interpolate(scores, size, "bilinear", align_corners=False).

    `scores` (B, K, h, w) float32, contiguous, or kept on disk (`SpilledScores`); the result (B,
    K, stop - start, W) is bit-equal to those rows of the full resize when the full call runs
    aten's generic kernel (see `bands_match_full`). With a `workspace` the result may live in
    its buffers: use it before the next call with the same workspace.
    """
    recipe = recipe_for(scores.device.type)
    return _resize_rows(scores, size, start, stop, recipe, workspace)


def bands_match_full(device: torch.device, size: tuple[int, int], num_classes: int) -> bool:
    """Whether banded rows can equal the full-image ones for an (H, W) output on `device`.

    aten's CPU bilinear resize takes a channels-last kernel with other rounding when
    H + W <= 128, or with one thread and 3 channels; then only the full-image call itself
    gives its floats (and it is small or has few channels).
    """
    if device.type != "cpu":
        return True
    small = size[0] + size[1] <= 128
    return not small and not (torch.get_num_threads() == 1 and num_classes == 3)


def _simd_width() -> int:
    """Floats per Vectorized<float> in the softmax kernel this CPU runs."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


@functools.lru_cache(maxsize=8)
def scalar_pixels(batch: int, pixels: int, *, width: int, threads: int) -> tuple[int, ...]:
    """Flat (b * pixels + p) indices that aten's softmax over dim 1 of a contiguous
    (batch, K, pixels) tensor computes in its scalar loop.

    The B * pixels positions are split into `threads` equal chunks (rounded up); each chunk,
    cut at image boundaries, runs `width` positions at a time, and the remainder of each
    piece (fewer than `width`) goes through the scalar loop.
    """
    total = batch * pixels
    chunk = -(-total // min(threads, total)) if threads > 1 and total > 1 else total
    out: list[int] = []
    for begin in range(0, total, chunk):
        end, at = min(begin + chunk, total), begin
        while at < end:
            piece_end = min(end, (at // pixels + 1) * pixels)
            out.extend(range(piece_end - (piece_end - at) % width, piece_end))
            at = piece_end
    return tuple(out)


def softmax_rows(
    band: Tensor, *, height: int, start: int, workspace: Workspace | None = None
) -> Tensor:
    """softmax(dim=1) of `band` (B, K, R, W): rows start:start+R of a contiguous
    (B, K, height, W) tensor, as the very floats aten's softmax of that whole tensor writes
    there (see the module doc). With a `workspace`, a band that `resize_rows` left there is
    used in place."""
    if band.device.type != "cpu":
        return band.softmax(dim=1)
    B, K, R, W = band.shape
    flat, dest = (workspace or Workspace()).classes_first((B, K, R, W), band.device)
    if band.transpose(0, 1).data_ptr() != dest.data_ptr():
        dest.copy_(band.transpose(0, 1))
    # In the padded buffer every pixel takes aten's SIMD loop; then the pixels that the full
    # tensor's softmax ran through its scalar loop are redone that way.
    probs = flat.softmax(dim=1)[0, :, : B * R * W].view(K, B, R, W)
    width, threads = _simd_width(), torch.get_num_threads()
    flat_ids = torch.tensor(scalar_pixels(B, height * W, width=width, threads=threads))
    b, pixel = flat_ids // (height * W), flat_ids % (height * W)
    row, col = pixel // W - start, pixel % W
    keep = (row >= 0) & (row < R)
    b, row, col = b[keep], row[keep], col[keep]
    if b.numel():  # (m, K, 1): one pixel per image, so aten's scalar loop does each
        scalar = band[b, :, row, col][:, :, None].softmax(dim=1)[:, :, 0]  # (m, K)
        probs[:, b, row, col] = scalar.T
    return probs.transpose(0, 1)
