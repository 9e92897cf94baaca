"""What runs the crop forward of the test pipeline: the device, the precision, the scorer.

A model here is a Segmentor (PyTorch) or a segvit.export.onnx.OnnxSegmentor (onnxruntime);
both give `predict(images (B, 3, crop, crop)) -> scores (B, K, crop, crop)` and a `meta`.
`score_function` wraps `predict` in bfloat16 autocast when the precision asks for it, and
the pipeline (segvit.inference) turns the scores back to float32 before it averages them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from segvit.errors import SegvitError
from segvit.inference import ScoreFn

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

# CPU flags of bfloat16 matrix units (x86: AMX tiles, AVX-512 BF16 dot products). Without
# them torch emulates bf16 matmuls, which is slower than float32.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags as Linux lists them; empty where there is no such file."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16_units(flags: set[str] | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX or AVX-512 BF16)."""
    if flags is None:
        flags = cpu_flags()
        capability = torch.backends.cpu.get_cpu_capability()  # "AVX512", "AVX2", ...
        if "AMX" in capability.upper():
            return True
    return any(flag in flags for flag in BF16_FLAGS)


def resolve_precision(
    precision: str, device: torch.device, *, bf16_units: bool | None = None
) -> Literal["fp32", "bf16"]:
    """`auto` -> bf16 on a CUDA device that supports it or a CPU with bf16 units, else fp32.

    `bf16_units` stands for the CPU check (tests pass it; None asks this CPU)."""
    if precision not in PRECISIONS:
        raise SegvitError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    units = cpu_has_bf16_units() if bf16_units is None else bf16_units
    return "bf16" if units else "fp32"


def model_device(model: Any) -> torch.device:
    """Where a model's crop forward runs: an ONNX model says so, a torch model's weights do."""
    device = getattr(model, "device", None)
    return device if isinstance(device, torch.device) else next(model.parameters()).device


def score_function(model: Any, precision: Literal["fp32", "bf16"]) -> ScoreFn:
    """`model.predict`, in bfloat16 autocast on the model's device when `precision` is bf16."""
    if precision == "fp32":
        return model.predict
    if not isinstance(model, torch.nn.Module):
        raise SegvitError("--precision bf16: an ONNX model runs in float32; use fp32 or auto")
    device_type = model_device(model).type

    def predict(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return model.predict(images)

    return predict
