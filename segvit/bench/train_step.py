"""Seconds per training iteration and peak memory of a variant, without data loading.

A timed step is the work of one training iteration of `segvit train` on one device: forward
on a batch (under bf16 autocast on CUDA, float32 on a CPU), the variant's own loss, backward,
gradient clipping at 35 and an AdamW step with the paper's parameter groups. Only the data
pipeline is left out (`segvit bench data` times that): the batch is made once, up front.

Memory is read where each device can report it honestly: on CUDA the peak of
`torch.cuda.max_memory_allocated` from before the model reaches the GPU (weights, gradients,
AdamW moments and activations); on a CPU the process's peak resident set size, a high-water
mark that cannot be reset and so also holds the interpreter, torch and anything run earlier
in the same process (`baseline_memory_mb` is the same mark read before the model was built).

Model FLOPs utilisation (`mfu`): the training FLOPs the step achieved (3x the forward pass
fvcore counts at this crop, x2 for a multiply-add, times images per second) over the GPU's
dense bf16 peak (segvit.analysis.hardware); None where the peak is unknown (CPUs, other GPUs).
`write_record` saves a result with the date and host it was measured on, for
`segvit reproduce --plan` to estimate GPU-hours from.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from segvit.data.info import IGNORE_INDEX
from segvit.engine.train import LossFn, forward_backward, optimizer_step
from segvit.errors import SegvitError
from segvit.fileio import write_json

# References: SegViT release configs (batch 16 in total, 2 per GPU on 8 GPUs for ViT-B; AdamW,
# head lr x10); docs/architecture.md.

CPU_BATCH = 2  # default per-device batch on a CPU: a ViT-B step at 512 takes seconds already
CUDA_BATCH = 8  # default per-device batch on CUDA: between the release's 2 (ViT-B) or 4
# (Shrunk L) per GPU and the paper's whole 16 on one device, which `--batch 16` times.
CLASSES_PER_IMAGE = 8  # a real crop shows a handful of classes, not all K (see synthetic_batch)


@dataclass(frozen=True)
class BenchConfig:
    """One training-step benchmark."""

    variant: str  # a name from segvit.modeling.variants.VARIANTS
    dataset: str = "ade20k"  # sets the class count and the default crop
    crop: int | None = None  # None: the dataset's crop for this ViT size (512, 640 for ADE20K L)
    batch: int | None = None  # images per step on the one device; None: CPU_BATCH or CUDA_BATCH
    steps: int = 10  # timed steps; the figure is their median
    warmup: int = 3  # untimed steps first (allocator, kernel choice, AdamW state creation)
    tiny: bool = False  # width-192 ViT of the same depth
    device: str = "auto"  # "auto" (CUDA if present), "cpu" or "cuda"
    amp: bool = True  # bf16 autocast on CUDA, as training does; a CPU always runs float32
    threads: int | None = None  # torch CPU threads during the run; None: torch's default. On a
    # busy machine 1 thread can be many times faster than several that wait on each other.
    seed: int = 0  # weights and the synthetic batch
    flops: bool = True  # count the forward GFLOPs (fvcore, seconds on a CPU) for the MFU
    backbone: str | None = None  # a timm name in place of the variant's ViT (--backbone)
    freeze_backbone: bool = False  # time the head-only step (Recipe.freeze_backbone)

    def __post_init__(self) -> None:
        checks = (
            ("batch", self.batch is None or self.batch > 0, "None or > 0"),
            ("steps", self.steps > 0, "> 0"),
            ("warmup", self.warmup >= 0, ">= 0"),
            ("threads", self.threads is None or self.threads > 0, "None or > 0"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise SegvitError(f"--{name} must be {expected}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class BenchResult:
    variant: str
    dataset: str
    crop: int
    batch: int  # images per timed step
    tiny: bool
    device: str  # e.g. "cuda (NVIDIA H100 80GB HBM3)" or "cpu (AMD EPYC, 2 threads)"
    dtype: str  # "bfloat16 autocast" or "float32"
    steps: int  # timed steps
    seconds_per_iter: float  # median over the timed steps
    images_per_second: float  # batch / seconds_per_iter
    peak_memory_mb: float  # see memory_kind
    memory_kind: str  # "cuda max allocated" or "process peak RSS"
    baseline_memory_mb: float  # the same measure before the model was built
    params_m: float  # parameters, millions
    final_loss: float  # the last step's loss, a sanity check that the step trains
    schedule_hours: float  # the dataset's schedule (e.g. 160k its x 16 images) at this speed
    # on this one device, accumulating gradients to the paper's batch: a linear estimate
    model_gflops: float | None = None  # fvcore's forward count of one crop (None: not counted)
    train_tflops: float | None = None  # training FLOP/s achieved, in TFLOP/s (see module doc)
    peak_tflops: float | None = None  # the device's dense bf16 peak; None: not known
    peak_label: str | None = None  # which datasheet card the peak is for
    mfu: float | None = None  # train_tflops / peak_tflops; None without both
    backbone: str | None = None  # the timm name it ran on, None: the variant's own
    frozen: bool = False  # the backbone was frozen (head-only steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_batch(
    batch: int, crop: int, num_classes: int, *, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Normalised-looking images (B, 3, crop, crop) and block labels (B, crop, crop), int64.

    Each label map paints CLASSES_PER_IMAGE random classes on a coarse grid and ends in an
    ignored (255) band, like the padding of a short image. The ATM loss upsamples one mask per
    class present, so per-pixel random labels (every class in every image) would make the loss
    far costlier than it is on real crops.
    """
    images = torch.randn(batch, 3, crop, crop, generator=generator)
    cells = max(crop // 32, 1)
    k = min(CLASSES_PER_IMAGE, num_classes)
    classes = torch.stack(
        [torch.randperm(num_classes, generator=generator)[:k] for _ in range(batch)]
    )  # (B, k)
    picks = torch.randint(k, (batch, cells * cells), generator=generator)  # (B, cells^2)
    grid = classes.gather(1, picks).view(batch, 1, cells, cells).float()
    labels = F.interpolate(grid, size=(crop, crop), mode="nearest")[:, 0].long()  # (B, H, W)
    labels[:, crop - max(crop // 16, 1) :] = IGNORE_INDEX
    return images, labels


def train_step(
    model: nn.Module,
    optimizer: Optimizer,
    images: Tensor,
    labels: Tensor,
    loss_fn: LossFn,
    *,
    amp_dtype: torch.dtype | None = None,
    clip_grad: float,
) -> Tensor:
    """One optimizer step exactly as `segvit train` takes it (the engine's own forward/backward
    and clipped step, one micro-batch, gradients clipped to the recipe's `clip_grad`); the
    detached loss."""
    optimizer.zero_grad(set_to_none=True)
    terms = forward_backward(model, images, labels, loss_fn, amp_dtype=amp_dtype)
    optimizer_step(model, optimizer, None, clip_grad)
    return terms["loss"]


def record_name(result: BenchResult) -> str:
    """One file per (variant, backbone, frozen, size, dataset, crop, batch, precision,
    device)."""
    device = result.device if result.device.startswith("cuda") else "cpu"  # not thread counts
    parts = [result.variant, result.backbone or "", "frozen" if result.frozen else "",
             "tiny" if result.tiny else "", result.dataset, str(result.crop),
             f"b{result.batch}", "fp32" if result.dtype == "float32" else "", device]  # fmt: skip
    return re.sub(r"[^a-z0-9_.]+", "-", "-".join(p for p in parts if p).lower()).strip("-")


def write_record(result: BenchResult, folder: Path) -> Path:
    """`folder`/NAME.json: the result with when (UTC) and where (host, torch) it was measured."""
    path = Path(folder) / f"{record_name(result)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = result.to_dict() | {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "torch": torch.__version__,
    }
    write_json(path, record)
    return path


@dataclass(frozen=True)
class BenchRecord:
    """A `segvit bench train --save` file."""

    path: Path
    variant: str
    dataset: str
    crop: int
    batch: int
    tiny: bool
    device: str  # "cuda (NVIDIA H100 80GB HBM3)", "cpu (...)"
    dtype: str  # "bfloat16 autocast" or "float32"
    seconds_per_iter: float
    measured_at: str  # ISO 8601, UTC
    host: str
    backbone: str | None = None  # the timm name it ran on; None: the variant's own ViT
    frozen: bool = False  # head-only steps

    @property
    def seconds_per_image(self) -> float:
        return self.seconds_per_iter / self.batch


def read_record(path: Path) -> BenchRecord:
    """A file `write_record` wrote; a one-line error for anything else."""
    try:
        data = json.loads(Path(path).read_text())
        return BenchRecord(
            path=Path(path), variant=str(data["variant"]), dataset=str(data["dataset"]),
            crop=int(data["crop"]), batch=int(data["batch"]), tiny=bool(data["tiny"]),
            device=str(data["device"]), dtype=str(data["dtype"]),
            seconds_per_iter=float(data["seconds_per_iter"]),
            measured_at=str(data["measured_at"]), host=str(data.get("host", "unknown host")),
            backbone=None if data.get("backbone") is None else str(data["backbone"]),
            frozen=bool(data.get("frozen", False)),
        )  # fmt: skip
    except FileNotFoundError:
        raise SegvitError(f"--bench-file {path}: no such file") from None
    except (ValueError, KeyError, TypeError) as err:
        raise SegvitError(
            f"{path}: not a `segvit bench train --save` record ({type(err).__name__}: {err})"
        ) from None


def pick_record(
    records: Sequence[BenchRecord],
    variant: str,
    crop: int,
    *,
    tiny: bool,
    dataset: str,
    backbone: str | None = None,
    frozen: bool = False,
) -> BenchRecord | None:
    """The measurement of this model (variant on this backbone, frozen or not) at this crop
    to plan with: a GPU's over a CPU's, then the same dataset, then mixed precision (as
    training runs on a GPU), then the newest."""
    model = (variant, backbone, frozen, crop, tiny)
    fits = [r for r in records if (r.variant, r.backbone, r.frozen, r.crop, r.tiny) == model]
    return max(
        fits,
        key=lambda r: (
            r.device.startswith("cuda"),
            r.dataset == dataset,
            r.dtype != "float32",
            r.measured_at,
        ),  # fmt: skip
        default=None,
    )
