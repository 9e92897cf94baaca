"""Evaluation over a whole split: sliding-window or whole-image, single- or multi-scale.

Per-class intersections and unions are accumulated over the split (segvit.metrics), as
mmsegmentation does, so the numbers compare with the paper's. PASCAL-Context 60-class
models are also scored over the 59 classes without background.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from segvit.data.datasets import SegDataset
from segvit.data.info import DatasetSpec
from segvit.engine.backend import model_device, resolve_precision, score_function
from segvit.engine.distributed import unwrap
from segvit.errors import SegvitError
from segvit.inference import InferenceSettings, infer_labels
from segvit.metrics import SegMetric
from segvit.modeling.segmentor import Segmentor

# References: mmsegmentation 0.24 (slide inference, IoU accumulation), SegViT release test
# settings (crop, stride, base scale per dataset; ms ratios with flip).


@dataclass(frozen=True)
class EvalSettings:
    """How a model is scored; the dataset and the model's crop fill in what is left None."""

    split: Literal["train", "val"] = "val"
    mode: Literal["slide", "whole"] = "slide"  # the paper slides a crop-sized window
    multi_scale: bool = False  # ratios 0.5-1.75 with flip, probabilities averaged
    stride: int | None = None  # sliding-window stride; None: the dataset's for the crop
    max_images: int | None = None  # evaluate the first N images only (smoke runs)
    window_batch: int = 4  # sliding windows per forward; bounds memory

    def __post_init__(self) -> None:
        if self.mode not in ("slide", "whole"):
            raise SegvitError(f"--mode {self.mode}: expected slide or whole")
        if self.split not in ("train", "val"):
            raise SegvitError(f"split {self.split!r}: expected train or val")
        if self.stride is not None and self.stride < 1:  # 0 would read as "the default"
            raise SegvitError(f"--stride {self.stride}: expected at least 1")
        if self.max_images is not None and self.max_images < 1:
            raise SegvitError(f"--max-images {self.max_images}: expected at least 1")

    def stride_for(self, dataset: DatasetSpec, crop: int) -> int:
        """The stride at `crop`: explicit, else the dataset's; it must not exceed the crop,
        or columns between windows would get no score."""
        stride = self.stride or dataset.stride_for(crop)
        if not 0 < stride <= crop:
            raise SegvitError(f"--stride {stride}: expected 1 to the crop ({crop})")
        return stride


def check_dataset(model: Segmentor, dataset: DatasetSpec, source: Path | str) -> None:
    """Refuse to score a model on a dataset of another class count."""
    if dataset.num_classes != model.meta.num_classes:
        raise SegvitError(
            f"{source}: the {model.meta.variant} model predicts {model.meta.num_classes} "
            f"classes; dataset {dataset.name} has {dataset.num_classes}"
        )


def evaluate(
    model: nn.Module,
    dataset: DatasetSpec,
    settings: EvalSettings = EvalSettings(),
    *,
    data_root: Path = Path("data"),
    progress: bool = True,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Score `model` (a Segmentor, DDP around one, or an OnnxSegmentor) on a split; metrics
    in percent. `precision`: fp32 (the default, so scores compare), bf16 or auto."""
    segmentor: Segmentor = unwrap(model)
    check_dataset(segmentor, dataset, segmentor.meta.variant)
    crop = segmentor.meta.crop
    stride = settings.stride_for(dataset, crop)
    inference = InferenceSettings.for_dataset(
        dataset,
        crop,
        multi_scale=settings.multi_scale,
        mode=settings.mode,
        stride=stride,
        window_batch=settings.window_batch,
        norm=segmentor.norm,
    )
    split = SegDataset(dataset, Path(data_root), settings.split)  # 8-bit photos, as decoded
    count = len(split) if settings.max_images is None else min(settings.max_images, len(split))
    device = model_device(segmentor)
    score_fn = score_function(segmentor, resolve_precision(precision, device))
    metric = SegMetric(num_classes=dataset.num_classes, device=device)
    was_training = segmentor.training
    segmentor.eval()
    start = time.perf_counter()
    try:
        # Under torch.distributed each process scores its share; the matrices are summed.
        rank, world = _rank_and_world()
        shown = progress and rank == 0
        for index in tqdm(
            range(rank, count, world), desc=f"eval {dataset.name}", disable=not shown
        ):
            sample = split[index]
            labels = infer_labels(score_fn, sample["image"], inference, device=device)
            metric.update(labels, torch.from_numpy(sample["label"]))
    finally:
        segmentor.train(was_training)
    metric.all_reduce()
    results: dict[str, Any] = metric.compute()
    if dataset.background is not None:  # PASCAL-Context: 60 classes, and 59 without background
        without_background = metric.compute(exclude=(dataset.background,))
        results[f"mIoU{dataset.num_classes - 1}"] = without_background["mIoU"]
    results.update(
        images=count,
        seconds=round(time.perf_counter() - start, 2),
        settings=asdict(settings) | {"dataset": dataset.name, "crop": crop, "stride": stride},
        classes=list(dataset.classes),
    )
    return results


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
