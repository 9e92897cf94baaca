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

from segvit.data.classes import class_names
from segvit.data.datasets import SegDataset
from segvit.data.info import dataset_info
from segvit.data.transforms import TestTransform
from segvit.engine.checkpoint import load_weights
from segvit.errors import SegvitError
from segvit.fileio import write_json
from segvit.inference import MS_SCALES, infer_labels
from segvit.metrics import SegMetric
from segvit.modeling.segmentor import Segmentor
from segvit.modeling.variants import ModelConfig, build_model

# References: mmsegmentation 0.24 (slide inference, IoU accumulation), SegViT release test
# settings (crop, stride, base scale per dataset; ms ratios with flip).


@dataclass(frozen=True)
class EvalConfig:
    """How a model is scored."""

    dataset: str  # dataset name; its class count must match the model's
    data_root: str = "data"  # prepared datasets live here (segvit prepare)
    split: Literal["train", "val"] = "val"
    mode: Literal["slide", "whole"] = "slide"  # the paper slides a crop-sized window
    multi_scale: bool = False  # ratios 0.5-1.75 with flip, probabilities averaged
    max_images: int | None = None  # evaluate the first N images only (smoke runs)
    window_batch: int = 4  # sliding windows per forward; bounds memory
    device: str = "auto"


def load_checkpoint(path: Path, *, device: torch.device | str = "cpu") -> Segmentor:
    """Rebuild the model a weights file was trained as, and load its weights."""
    state, meta = load_weights(Path(path))
    try:
        cfg = ModelConfig(
            variant=str(meta["variant"]),
            dataset=str(meta["dataset"]),
            crop=int(meta["crop"]),
            tiny=bool(meta.get("tiny", False)),
        )
    except KeyError as err:
        raise SegvitError(f"{path}: weights file has no {err} in its metadata") from None
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SegvitError(
            f"{path}: weights do not fit variant {cfg.variant} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.to(device).eval()


def check_dataset(model: Segmentor, dataset: str, source: Path | str) -> None:
    """Refuse to score a model on a dataset of another class count."""
    info = dataset_info(dataset)
    if info.num_classes != model.meta.num_classes:
        raise SegvitError(
            f"{source}: the {model.meta.variant} model predicts {model.meta.num_classes} classes "
            f"({model.meta.dataset}); --dataset {dataset} has {info.num_classes}"
        )


def evaluate(model: nn.Module, cfg: EvalConfig, *, progress: bool = True) -> dict[str, Any]:
    """Score `model` (a Segmentor, or DDP around one) on a split; metrics in percent."""
    segmentor: Segmentor = getattr(model, "module", model)
    check_dataset(segmentor, cfg.dataset, segmentor.meta.variant)
    info = dataset_info(cfg.dataset)
    dataset = SegDataset(info, Path(cfg.data_root), cfg.split, TestTransform(info))
    count = len(dataset) if cfg.max_images is None else min(cfg.max_images, len(dataset))
    device = next(segmentor.parameters()).device
    crop = segmentor.meta.crop
    metric = SegMetric(num_classes=info.num_classes, device=device)
    was_training = segmentor.training
    segmentor.eval()
    start = time.perf_counter()
    try:
        # Under torch.distributed each process scores its share; the matrices are summed.
        rank, world = _rank_and_world()
        shown = progress and rank == 0
        for index in tqdm(range(rank, count, world), desc=f"eval {cfg.dataset}", disable=not shown):
            sample = dataset[index]
            image = sample["image"][None].to(device)  # (1, 3, H, W) at original size
            labels = infer_labels(
                segmentor.predict,
                image,
                num_classes=info.num_classes,
                mode=cfg.mode,
                crop=crop,
                stride=info.stride_for(crop),
                base_scale=info.base_scale_for(crop),
                scales=MS_SCALES if cfg.multi_scale else (1.0,),
                flip=cfg.multi_scale,
                batch_size=cfg.window_batch,
            )
            metric.update(labels[0], sample["label"].to(device))
    finally:
        segmentor.train(was_training)
    metric.all_reduce()
    results: dict[str, Any] = metric.compute()
    if cfg.dataset == "pascal-context":  # the paper reports 60 classes and 59 (no background)
        without_background = metric.compute(exclude=(0,))
        results["mIoU59"] = without_background["mIoU"]
    results.update(
        images=count,
        seconds=round(time.perf_counter() - start, 2),
        settings=asdict(cfg) | {"crop": crop, "stride": info.stride_for(crop)},
        classes=list(class_names(cfg.dataset)),
    )
    return results


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def write_results(results: dict[str, Any], out_dir: Path, name: str) -> Path:
    """metrics.json beside the predictions: every metric and the settings behind it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    write_json(path, results, indent=1)
    return path
