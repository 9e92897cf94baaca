"""Peak memory and wall time of one prediction of a large photo on the CPU.

The measured work is what `segvit predict` does after decoding: `infer_labels` (each pass
resized from the 8-bit photo and normalised at its own size, scores kept at that small size,
labels finished in bands of rows) on a random 8-bit RGB photo of the given size through a
randomly initialised model. `full_path=True` measures the path used
before it, `infer(...).argmax(0)`, which holds K full-resolution float32 maps several times
over (about 125 bytes per pixel for 150 classes).

Peak memory is the resident set size high-water mark (getrusage ru_maxrss), which a process
cannot reset; so by default the work runs in a fresh subprocess and the peak is that
prediction's alone. `before_rss_mb` is the same mark just before the prediction: the
interpreter, torch, the model and the 8-bit photo.
"""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import segvit
from segvit.data.info import DatasetSpec
from segvit.engine.backend import resolve_precision, score_function
from segvit.errors import SegvitError
from segvit.inference import InferenceSettings, infer, infer_labels
from segvit.modeling.segmentor import Segmentor

# References: issue 12 ("memory that does not grow with the photo").


@dataclass(frozen=True)
class PredictBench:
    """One measured prediction."""

    variant: str
    height: int
    width: int
    num_classes: int
    multi_scale: bool  # several scales (the paper's: MS_SCALES with flips), else one
    path: str  # "bands" (infer_labels) or "full" (infer(...).argmax(0))
    seconds: float  # wall time of the prediction alone
    peak_rss_mb: float  # resident set high-water mark of the measuring process, in MiB
    before_rss_mb: float  # the same mark just before the prediction started
    threads: int  # torch CPU threads during the prediction
    isolated: bool  # measured in a fresh subprocess
    backend: str = "torch"  # what ran the crop forward: torch or onnx (onnxruntime)
    precision: str = "fp32"  # fp32 or bf16 (torch autocast)

    @property
    def prediction_rss_mb(self) -> float:
        """How far the prediction raised the high-water mark."""
        return self.peak_rss_mb - self.before_rss_mb

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"prediction_rss_mb": round(self.prediction_rss_mb, 1)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass(frozen=True)
class _Job:
    """What one measuring process does (pickled to it when isolated)."""

    settings: InferenceSettings
    height: int
    width: int
    full_path: bool
    band_rows: int | None
    threads: int | None
    seed: int
    dataset: DatasetSpec  # its classes, palette and settings go into an ONNX twin's metadata
    backend: str  # torch, or onnx (the model exported first, outside the timing)
    precision: str  # fp32, bf16 or auto


def _measure(variant_builder: Callable[[], Segmentor], job: _Job, isolated: bool) -> PredictBench:
    threads = torch.get_num_threads()
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    try:  # in-process runs must leave the caller's thread count as it was
        return _measure_with_threads(variant_builder, job, isolated)
    finally:
        torch.set_num_threads(threads)


def _measure_with_threads(
    variant_builder: Callable[[], Segmentor], job: _Job, isolated: bool
) -> PredictBench:
    torch.manual_seed(job.seed)
    model = variant_builder().eval()
    meta, settings = model.meta, job.settings
    if (meta.num_classes, meta.crop) != (settings.num_classes, settings.crop):
        raise SegvitError(
            f"bench predict: the model has {meta.num_classes} classes at crop {meta.crop}, the "
            f"settings {settings.num_classes} at crop {settings.crop}"
        )
    H, W = job.height, job.width
    rng = np.random.default_rng(job.seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)  # a decoded photo
    settings = replace(settings, norm=model.norm)  # the weights' own normalisation
    with tempfile.TemporaryDirectory(prefix="segvit-bench-onnx-") as tmp:
        onnx = job.backend == "onnx"
        network = _onnx_twin(model, job.dataset, Path(tmp), job.threads) if onnx else model
        score_fn = score_function(network, resolve_precision(job.precision, torch.device("cpu")))
        before = _peak_rss_mb()
        start = time.perf_counter()
        if job.full_path:
            labels = infer(score_fn, image, settings).argmax(dim=0)
        else:
            labels = infer_labels(score_fn, image, settings, band_rows=job.band_rows)
        seconds = time.perf_counter() - start
    if labels.shape != (H, W):
        raise SegvitError(
            f"bench predict: labels of shape {tuple(labels.shape)}, expected ({H}, {W})"
        )
    return PredictBench(
        variant=meta.variant,
        height=H,
        width=W,
        num_classes=meta.num_classes,
        multi_scale=len(settings.scales) > 1,
        path="full" if job.full_path else "bands",
        seconds=round(seconds, 3),
        peak_rss_mb=round(_peak_rss_mb(), 1),
        before_rss_mb=round(before, 1),
        threads=torch.get_num_threads(),
        isolated=isolated,
        backend=job.backend,
        precision=resolve_precision(job.precision, torch.device("cpu")),
    )


def parse_backends(text: str) -> list[str]:
    """`--backend`'s value: torch, onnx, or both (torch,onnx); onnxruntime checked up front
    (one line naming the extra) before any measuring."""
    backends = [b.strip() for b in text.split(",") if b.strip()]
    if not backends or any(b not in ("torch", "onnx") for b in backends):
        raise SegvitError(f"--backend {text}: expected torch, onnx or torch,onnx")
    if "onnx" in backends:
        from segvit.export.onnx import _require

        _require("onnxruntime")
    return backends


def _onnx_twin(model: Segmentor, dataset: DatasetSpec, folder: Path, threads: int | None):
    """The model exported to ONNX (outside the timing) and opened with onnxruntime."""
    from segvit.export.onnx import OnnxSegmentor, export_onnx

    path = export_onnx(model, {}, dataset, folder / "model.onnx")
    return OnnxSegmentor(path, threads=threads)


def bench_predict(
    variant_builder: Callable[[], Segmentor],
    *,
    settings: InferenceSettings,
    dataset: DatasetSpec,
    height: int,
    width: int,
    full_path: bool = False,
    band_rows: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    isolated: bool = True,
    backend: str = "torch",
    precision: str = "fp32",
) -> PredictBench:
    """Peak RSS and wall time of one prediction of a random `height` x `width` image.

    Arguments:
        variant_builder: builds the model (a picklable callable when `isolated`, e.g.
            functools.partial(build_model, "segvit_b", num_classes=150, crop=512)).
        settings: how the photo is scored (`InferenceSettings.for_dataset`, with the window
            batch `segvit predict` uses on a CPU); its class count and crop are the model's.
        full_path: measure `infer(...).argmax(0)` instead of `infer_labels`.
        band_rows: `infer_labels`'s rows per band; None: its default.
        threads: torch CPU threads during the prediction; None: torch's default.
        isolated: run in a fresh subprocess so the peak is this prediction's alone.
        backend: "torch", or "onnx": the model exported first (not timed), then onnxruntime.
        precision: "fp32", "bf16" (torch autocast) or "auto".
    """
    if backend not in ("torch", "onnx"):
        raise SegvitError(f"bench predict: backend {backend!r}: expected torch or onnx")
    if height < 1 or width < 1:
        raise SegvitError(f"bench predict: expected a positive image size, got {height}x{width}")
    if threads is not None and threads < 1:
        raise SegvitError(f"bench predict: threads must be None or >= 1, got {threads}")
    job = _Job(
        settings, height, width, full_path, band_rows, threads, seed, dataset, backend, precision
    )
    if not isolated:
        return _measure(variant_builder, job, False)
    return _in_fresh_process(variant_builder, job)


def _in_fresh_process(variant_builder: Callable[[], Segmentor], job: _Job) -> PredictBench:
    """Run `_measure` in a new interpreter (this module as a script), passing pickles by file."""
    root = str(Path(segvit.__file__).resolve().parents[1])  # where this segvit is imported from
    env = os.environ | {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="segvit-bench-") as tmp:
        job_file, result = Path(tmp, "job.pkl"), Path(tmp, "result.pkl")
        job_file.write_bytes(pickle.dumps((variant_builder, job)))
        proc = subprocess.run(
            [sys.executable, "-m", "segvit.bench.predict", str(job_file), str(result)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        if proc.returncode != 0 or not result.exists():
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise SegvitError(
                f"bench predict: the measuring process failed (exit {proc.returncode}: {last})"
            )
        return PredictBench(**pickle.loads(result.read_bytes()))


if __name__ == "__main__":  # the measuring process of `_in_fresh_process`
    builder, measured_job = pickle.loads(Path(sys.argv[1]).read_bytes())
    measured = _measure(builder, measured_job, True)
    Path(sys.argv[2]).write_bytes(pickle.dumps(asdict(measured)))  # plain fields: no __main__ class
