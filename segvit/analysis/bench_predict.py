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

import functools
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import segvit
from segvit.engine.backend import resolve_precision, score_function
from segvit.errors import SegvitError
from segvit.inference import MS_SCALES, InferenceSettings, infer, infer_labels, window_batch
from segvit.modeling.segmentor import Segmentor
from segvit.modeling.variants import build_model

# References: issue 12 ("memory that does not grow with the photo"); ADE20K test settings of
# the SegViT release (crop 512, slide stride 341, base scale (2048, 512)).

ADE20K_CLASSES = 150
ADE20K_STRIDE = 341  # slide stride at crop 512
ADE20K_BASE_SCALE = (2048, 512)  # (long, short) at crop 512


def build_bench_model(variant: str, *, crop: int = 512, tiny: bool = False) -> Segmentor:
    """A randomly initialised ADE20K-class (150-way) model; the one call into the builder API."""
    return build_model(variant, num_classes=ADE20K_CLASSES, crop=crop, tiny=tiny)


@dataclass(frozen=True)
class PredictBench:
    """One measured prediction."""

    variant: str
    height: int
    width: int
    num_classes: int
    multi_scale: bool  # MS_SCALES with flips, else one scale
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


def _measure(
    variant_builder: Callable[[], Segmentor], options: dict[str, Any], isolated: bool
) -> PredictBench:
    threads = torch.get_num_threads()
    if options["threads"] is not None:
        torch.set_num_threads(options["threads"])
    try:  # in-process runs must leave the caller's thread count as it was
        return _measure_with_threads(variant_builder, options, isolated)
    finally:
        torch.set_num_threads(threads)


def _measure_with_threads(
    variant_builder: Callable[[], Segmentor], options: dict[str, Any], isolated: bool
) -> PredictBench:
    torch.manual_seed(options["seed"])
    model = variant_builder().eval()
    meta = model.meta
    H, W = options["height"], options["width"]
    rng = np.random.default_rng(options["seed"])
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)  # a decoded photo
    settings = InferenceSettings(
        num_classes=meta.num_classes,
        crop=meta.crop,
        stride=options["stride"],
        base_scale=options["base_scale"],
        scales=MS_SCALES if options["multi_scale"] else (1.0,),
        flip=options["multi_scale"],
        mode=options["mode"],
        window_batch=options["batch_size"],
    )
    backend, precision = options.get("backend", "torch"), options.get("precision", "fp32")
    with tempfile.TemporaryDirectory(prefix="segvit-bench-onnx-") as tmp:
        network = _onnx_twin(model, Path(tmp), options["threads"]) if backend == "onnx" else model
        score_fn = score_function(network, resolve_precision(precision, torch.device("cpu")))
        before = _peak_rss_mb()
        start = time.perf_counter()
        if options["full_path"]:
            labels = infer(score_fn, image, settings).argmax(dim=0)
        else:
            labels = infer_labels(score_fn, image, settings, band_rows=options["band_rows"])
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
        multi_scale=options["multi_scale"],
        path="full" if options["full_path"] else "bands",
        seconds=round(seconds, 3),
        peak_rss_mb=round(_peak_rss_mb(), 1),
        before_rss_mb=round(before, 1),
        threads=torch.get_num_threads(),
        isolated=isolated,
        backend=backend,
        precision=resolve_precision(precision, torch.device("cpu")),
    )


def _onnx_twin(model: Segmentor, folder: Path, threads: int | None):
    """The model exported to ONNX (outside the timing) and opened with onnxruntime."""
    from segvit.data.info import get_dataset
    from segvit.export.onnx import OnnxSegmentor, export_onnx

    path = export_onnx(model, {}, get_dataset("ade20k"), folder / "model.onnx")
    return OnnxSegmentor(path, threads=threads)


def cpu_name() -> str:
    """The CPU's model name as Linux states it (lscpu's "Model name"), else the platform's."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_predict(
    variant_builder: Callable[[], Segmentor] = functools.partial(build_bench_model, "segvit_b"),
    *,
    height: int,
    width: int,
    multi_scale: bool = False,
    full_path: bool = False,
    mode: str = "slide",
    stride: int = ADE20K_STRIDE,
    base_scale: tuple[int, int] = ADE20K_BASE_SCALE,
    batch_size: int | None = None,
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
            functools.partial(build_bench_model, "segvit_b", crop=512)); its meta gives the
            class count and the crop.
        multi_scale: MS_SCALES with flips (12 passes: 6 scales x 2), else one pass.
        full_path: measure `infer(...).argmax(0)` instead of `infer_labels`.
        stride, base_scale: slide stride and (long, short) base scale for the model's crop.
        batch_size: windows per model call; None: what `segvit predict` uses on a CPU.
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
    options = dict(
        height=height,
        width=width,
        multi_scale=multi_scale,
        full_path=full_path,
        mode=mode,
        stride=stride,
        base_scale=tuple(base_scale),
        batch_size=window_batch(torch.device("cpu")) if batch_size is None else batch_size,
        band_rows=band_rows,
        threads=threads,
        seed=seed,
        backend=backend,
        precision=precision,
    )
    if not isolated:
        return _measure(variant_builder, options, False)
    return _in_fresh_process(variant_builder, options)


def _in_fresh_process(
    variant_builder: Callable[[], Segmentor], options: dict[str, Any]
) -> PredictBench:
    """Run `_measure` in a new interpreter (this module as a script), passing pickles by file."""
    root = str(Path(segvit.__file__).resolve().parents[1])  # where this segvit is imported from
    env = os.environ | {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="segvit-bench-") as tmp:
        job, result = Path(tmp, "job.pkl"), Path(tmp, "result.pkl")
        job.write_bytes(pickle.dumps((variant_builder, options)))
        proc = subprocess.run(
            [sys.executable, "-m", "segvit.analysis.bench_predict", str(job), str(result)],
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
    builder, job_options = pickle.loads(Path(sys.argv[1]).read_bytes())
    measured = _measure(builder, job_options, True)
    Path(sys.argv[2]).write_bytes(pickle.dumps(asdict(measured)))  # plain fields: no __main__ class
