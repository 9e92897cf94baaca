"""Peak dense bf16 tensor throughput of known GPUs, by the name CUDA reports for them.

Also the names of the machine a figure was measured on (`describe_device`, `machine_label`):
whatever the vendor writes ("Intel(R) Xeon(R) CPU @ 2.30GHz", an ARM board's "(v8l)", an empty
name), a label keeps one shape, which the result tables rely on.

Model FLOPs utilisation (MFU) divides the FLOPs a training step needs by the time it took
and by the device's peak. The peak is the datasheet's dense figure: NVIDIA quotes bf16
"with sparsity" (2:4 structured), which is twice the dense rate a ViT can use.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# References: NVIDIA datasheets, bf16 tensor TFLOPS with sparsity halved to dense:
# H100 SXM 1,979 and H100 PCIe 1,513 and H100 NVL 1,671 (H100 Tensor Core GPU datasheet);
# H200 SXM 1,979 and H200 NVL 1,671 (H200 datasheet); GH200 1,979 (GH200 datasheet);
# A100 624 (A100 datasheet); L40S 733 (L40S datasheet); L4 242 (L4 datasheet); A10 250 (A10
# datasheet).


@dataclass(frozen=True)
class Peak:
    label: str  # the card as the datasheet names it
    bf16_tflops: float  # dense bf16 tensor-core peak, TFLOP/s
    pattern: str  # regular expression over torch.cuda.get_device_name(), case-insensitive


# Most specific first: "NVIDIA H100 PCIe" must not be read as the SXM part.
PEAKS: tuple[Peak, ...] = (
    Peak("H100 PCIe", 756.0, r"\bH100\b.*\bPCIe\b"),
    Peak("H100 NVL", 835.0, r"\bH100\b.*\bNVL\b"),
    Peak("H100 SXM", 989.0, r"\bH100\b"),  # "NVIDIA H100 80GB HBM3"
    Peak("H200 NVL", 835.0, r"\bH200\b.*\bNVL\b"),
    Peak("H200 SXM", 989.0, r"\bH200\b"),
    Peak("GH200", 989.0, r"\bGH200\b"),
    Peak("A100", 312.0, r"\bA100\b"),  # SXM4 and PCIe, 40 and 80 GB: one tensor-core rate
    Peak("L40S", 362.0, r"\bL40S\b"),
    Peak("L4", 121.0, r"\bL4\b"),
    Peak("A10", 125.0, r"\bA10\b"),
)

# The card the toolkit is planned for (issue 14: H100 runners), for estimates without a
# measurement; and the utilisation such an estimate assumes, below the 35% the issue targets.
REFERENCE_PEAK = PEAKS[2]
ASSUMED_MFU = 0.30


def peak_for(device_name: str) -> Peak | None:
    """The datasheet peak of the GPU `device_name` names (as CUDA reports it), or None."""
    for peak in PEAKS:
        if re.search(peak.pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None


def training_tflops(forward_gflops: float, images_per_second: float) -> float:
    """TFLOP/s a training step achieves: fvcore's forward count of one image (a multiply-add
    counted once, so x2 for FLOPs), x3 for forward and backward (the backward pass costs about
    twice the forward: gradients of activations and of weights), times images per second."""
    return 2 * 3 * forward_gflops * images_per_second / 1e3


def seconds_per_image(forward_gflops: float, peak_tflops: float, mfu: float) -> float:
    """The inverse of `training_tflops` at a given utilisation of `peak_tflops`."""
    return 2 * 3 * forward_gflops / (mfu * peak_tflops * 1e3)


# ---------------------------------------------------------------------------- machine names

_MARKS = re.compile(r"\((?:R|TM|C)\)|[\u00ae\u2122\u00a9]", flags=re.IGNORECASE)  # (R), (TM), (C)


def processor_name(raw: str, fallback: str) -> str:
    """A processor's name as a label holds it: trademark marks dropped, parentheses (the
    label's own delimiters) turned into spaces, whitespace collapsed; `fallback` when nothing
    is left. "Intel(R) Xeon(R) CPU @ 2.30GHz" -> "Intel Xeon CPU @ 2.30GHz"."""
    name = _MARKS.sub(" ", raw).replace("(", " ").replace(")", " ")
    return " ".join(name.split()) or fallback


def cpu_label(name: str, threads: int) -> str:
    """ "cpu (MODEL, N threads)" for the CPU called `name` running `threads` torch threads."""
    model = processor_name(name, platform.machine() or "unknown CPU")
    return f"cpu ({model}, {threads} thread{'s' if threads != 1 else ''})"


def gpu_label(name: str) -> str:
    """ "cuda (NAME)" for the GPU CUDA calls `name`."""
    return f"cuda ({processor_name(name, 'unknown GPU')})"


def machine_label(*, cpu: str, threads: int, cores: int, gpu: str | None, gpus: int) -> str:
    """Where numbers were measured: "cuda (NAME) xN" with GPUs, else "cpu (MODEL, N
    threads), N cores". A pure function of the names, so any machine's has this shape."""
    if gpu is not None:
        return f"{gpu_label(gpu)} x{gpus}"
    return f"{cpu_label(cpu, threads)}, {cores} cores"


def cpu_name() -> str:
    """The CPU's model name: /proc/cpuinfo's on Linux (x86), else what `platform` says (ARM
    boards and macOS often have no "model name" line); may be empty."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor()


def describe_device(device: torch.device) -> str:
    """The device a benchmark ran on: "cuda (NAME)" or "cpu (MODEL, N threads)"."""
    import torch

    if device.type == "cuda":
        return gpu_label(torch.cuda.get_device_name(device))
    return cpu_label(cpu_name(), torch.get_num_threads())


def this_machine() -> str:
    """`machine_label` of the machine running this: the GPUs when CUDA has any, else the CPU."""
    import torch

    cuda = torch.cuda.is_available()
    return machine_label(
        cpu=cpu_name(),
        threads=torch.get_num_threads(),
        cores=os.cpu_count() or 1,
        gpu=torch.cuda.get_device_name(0) if cuda else None,
        gpus=torch.cuda.device_count() if cuda else 0,
    )
