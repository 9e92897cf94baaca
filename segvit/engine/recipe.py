"""Recipes: the paper's, and a CPU-sized smoke one; the glue from names to a training run.

`run_training` builds the model of a variant, its dataset and augmentation, its loss and an
in-training evaluation, and hands them to the engine. The CLI and `segvit reproduce` both
come through here, so a table row trains exactly as `segvit train` would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from segvit.data.datasets import SegDataset
from segvit.data.info import dataset_info
from segvit.data.transforms import TrainTransform
from segvit.engine.distributed import reduce_count
from segvit.engine.evaluate import EvalConfig, evaluate
from segvit.engine.train import LossFn, TrainConfig, TrainResult, train
from segvit.errors import SegvitError
from segvit.losses import atm_loss, count_target_masks, pixel_head_loss, semantic_ce_loss
from segvit.modeling.output import SegOutput
from segvit.modeling.variants import LossKind, ModelConfig, build_model, get_variant


@dataclass(frozen=True)
class Preset:
    """How a variant is trained when only its name and dataset are given."""

    name: str
    dataset: str | None  # None: the row's / user's dataset; else always this one
    tiny: bool  # width-192 ViTs of the same depth
    iters: int | None  # None: the dataset's recipe (160k ADE20K, 80k COCO-Stuff-10K, PC)
    batch: int  # total batch over all processes
    lr: float  # backbone learning rate (the head's is head_lr_mult times it)
    head_lr_mult: float
    warmup_iters: int
    pretrained: str | None  # "hub" for the AugReg weights, None for random init
    eval_interval: int  # evaluation (and best.pt) every this many iterations
    checkpoint_interval: int
    eval_max_images: int | None  # None: the whole validation split


PRESETS: dict[str, Preset] = {
    # The release's recipe: AugReg init, lr 2e-5 (head 2e-4), 1,500 warm-up, batch 16.
    "paper": Preset("paper", None, False, None, 16, 2e-5, 10.0, 1500, "hub", 4000, 4000, None),
    # Random-init tiny ViTs learn from scratch: a larger lr, a short warm-up, few iterations.
    "smoke": Preset("smoke", "demo", True, 300, 8, 5e-4, 1.0, 50, None, 300, 150, None),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise SegvitError(f"--preset {name}: expected one of {', '.join(PRESETS)}") from None


def default_workers() -> int:
    """Data loader processes per device: 4, or fewer on a machine with fewer cores."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def make_loss(kind: LossKind, num_classes: int) -> LossFn:
    """The training loss of a variant; the ATM mask count is averaged over processes."""

    def loss_fn(output: SegOutput, labels: Tensor) -> Mapping[str, Tensor]:
        if kind == "pixel_ce":
            return pixel_head_loss(output, labels)
        if kind == "semantic_ce":
            return semantic_ce_loss(output, labels)
        count = count_target_masks(labels, num_classes=num_classes)
        return atm_loss(output, labels, num_classes=num_classes, num_masks=reduce_count(count))

    return loss_fn


def training_configs(
    variant: str,
    *,
    preset: Preset,
    dataset: str | None,
    work_dir: Path,
    data_root: Path,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[ModelConfig, TrainConfig, EvalConfig]:
    """The model, training and evaluation configs of `variant` under `preset`."""
    dataset = dataset or preset.dataset or "ade20k"
    if preset.dataset and dataset != preset.dataset:
        raise SegvitError(f"--preset {preset.name} trains on {preset.dataset}, not {dataset}")
    info = dataset_info(dataset)
    overrides = dict(overrides or {})
    pretrained = overrides.pop("pretrained", preset.pretrained)
    model_cfg = ModelConfig(variant, dataset, tiny=preset.tiny, pretrained=pretrained)
    train_cfg = TrainConfig(
        variant=variant,
        dataset=dataset,
        work_dir=str(work_dir),
        data_root=str(data_root),
        iters=preset.iters or info.iters,
        batch=preset.batch,
        lr=preset.lr,
        head_lr_mult=preset.head_lr_mult,
        weight_decay=info.weight_decay,
        warmup_iters=preset.warmup_iters,
        power=info.poly_power,
        eval_interval=preset.eval_interval,
        checkpoint_interval=preset.checkpoint_interval,
        num_workers=default_workers(),
        loss=get_variant(variant).loss,
    )
    train_cfg = replace(train_cfg, **overrides)
    eval_cfg = EvalConfig(
        dataset=dataset, data_root=str(data_root), max_images=preset.eval_max_images
    )
    return model_cfg, train_cfg, eval_cfg


def run_training(
    model_cfg: ModelConfig, train_cfg: TrainConfig, eval_cfg: EvalConfig | None
) -> TrainResult:
    """Build everything `train_cfg` names and train; evaluation every eval_interval."""
    model = build_model(model_cfg)
    info = dataset_info(model_cfg.dataset)
    train_set = SegDataset(info, Path(train_cfg.data_root or "data"), "train", transform=None)
    transform = TrainTransform(info, model.meta.crop)
    evaluate_fn = None
    if eval_cfg is not None:
        evaluate_fn = lambda net: evaluate(net, eval_cfg, progress=False)  # noqa: E731
    return train(
        train_cfg,
        model=model,
        train_set=train_set,
        loss_fn=make_loss(get_variant(model_cfg.variant).loss, info.num_classes),
        transform=transform,
        evaluate_fn=evaluate_fn,
    )
