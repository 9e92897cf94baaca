"""One experiment: a model variant on a dataset at a crop, trained by a recipe, scored by
eval settings. A YAML row, a `segvit train` call and a checkpoint all resolve to one.

    resolve("segvit_b", "ade20k")                   # the paper's Table 1 row
    resolve("segvit_b", recipe="smoke")            # tiny, demo data, CPU minutes
    resolve("atm_single_b", "mydata/dataset.yaml", recipe="smoke")  # your data, CPU minutes
    train_experiment(experiment, work_dir=..., data_root=...)

Names (variant, dataset or dataset file, recipe) are looked up here, once; the model
builder, the data pipeline and the engine receive the typed objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from segvit.criteria import Criterion
from segvit.data.catalog import load_dataset
from segvit.data.datasets import SegDataset
from segvit.data.info import DatasetSpec
from segvit.data.transforms import TrainTransform
from segvit.engine.evaluate import EvalSettings, evaluate
from segvit.engine.loading import trained_on
from segvit.engine.recipe import Backbone, Recipe, get_recipe
from segvit.engine.train import TrainConfig, TrainResult, train
from segvit.errors import SegvitError
from segvit.modeling.segmentor import Segmentor
from segvit.modeling.specs import BackboneSpec, ViTSpec
from segvit.modeling.variants import (
    Variant,
    build_model,
    check_crop,
    crop_problem,
    get_variant,
    resolve_backbone,
    structure_build,
)


@dataclass(frozen=True)
class Experiment:
    variant: Variant  # from segvit.modeling.variants.VARIANTS
    dataset: DatasetSpec  # what it trains on and is scored on
    crop: int  # training crop and sliding window
    recipe: Recipe
    eval: EvalSettings = field(default_factory=EvalSettings)
    backbone: str | None = None  # a timm name in place of the variant's ViT (--backbone)
    layers: tuple[int, ...] | None = None  # tapped layers, 0-based (--layers); None: default

    def with_recipe(self, **changes: Any) -> Experiment:
        """The same experiment under a recipe with `changes` (a typed `replace`)."""
        return replace(self, recipe=replace(self.recipe, **changes))

    def build_model(self, *, for_flops: bool = False) -> Segmentor:
        """The model, seeded by the recipe so one seed gives one set of initial weights.
        `for_flops`: the full-size model without pretrained weights (the paper's scale)."""
        if self.recipe.pretrained == Backbone.SMOKE and not for_flops:
            raise SegvitError(
                "the smoke backbone is pretrained on the dataset first: train through "
                "train_experiment, or resolve it with with_backbone(experiment, data_root)"
            )
        torch.manual_seed(self.recipe.seed)
        model = build_model(
            self.variant,
            num_classes=self.dataset.num_classes,
            crop=self.crop,
            tiny=self.recipe.tiny and not for_flops,
            pretrained=None if for_flops else self.recipe.pretrained,
            backbone=self.backbone,
            layers=self.layers,
        )
        if self.recipe.freeze_backbone:
            model.freeze_backbone()
        return model

    def criterion(self) -> Criterion:
        criterion = self.variant.criterion(self.dataset.num_classes)
        if self.recipe.mask_loss_excludes_ignored and hasattr(criterion, "exclude_ignored_pixels"):
            criterion = replace(criterion, exclude_ignored_pixels=True)
        return criterion

    def record(self) -> dict[str, str]:
        """What the run is, as every checkpoint and config.json of it records."""
        return {
            "variant": self.variant.name,
            "trained_on": self.dataset.name,
            "dataset_spec": self.dataset.to_record(),  # classes, folders: predict and eval
            "recipe": self.recipe.name,
            "loss": self.criterion().name,
        }


def resolve(
    variant: str | Variant,
    dataset: str | DatasetSpec | None = None,
    *,
    recipe: str | Recipe = "paper",
    crop: int | None = None,
    eval: EvalSettings | None = None,
    backbone: str | None = None,
    layers: tuple[int, ...] | None = None,
    **overrides: Any,
) -> Experiment:
    """The experiment of `variant` on `dataset` (a name, a dataset file or a spec; default:
    the recipe's, else ADE20K) under `recipe` (a name or a Recipe), with recipe `overrides`
    (None values ignored). The paper's recipe takes the dataset's paper schedule; the crop
    defaults to the dataset's for the variant's ViT size. `backbone` (a timm name) and `layers`
    (0-based) replace the variant's ViT and taps (segvit.modeling.families)."""
    chosen = variant if isinstance(variant, Variant) else get_variant(variant)
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    if not isinstance(dataset, DatasetSpec):
        dataset = load_dataset(dataset or recipe.dataset or "ade20k")
    recipe = recipe.for_dataset(dataset)  # a table's paper recipe meets each row's dataset
    spec = resolve_backbone(chosen, backbone, tiny=False)  # an unknown name fails here, once
    if recipe.crop is not None:  # a CPU-sized recipe: the data seen at its crop, whatever
        dataset = dataset.at_crop(check_crop(crop if crop is not None else recipe.crop, spec))
    if crop is not None:
        crop = check_crop(crop, spec)
    else:
        crop = _check_dataset_crop(dataset, dataset.crop_for(chosen.large), spec)
    if layers and isinstance(spec, ViTSpec):
        structure_build(chosen, spec, layers)  # layers the backbone has, for its structure
    recipe = recipe.override(**overrides)
    settings = eval or EvalSettings(max_images=recipe.eval_max_images)
    layers = tuple(layers) if layers else None
    return Experiment(chosen, dataset, crop, recipe, settings, backbone, layers)


def _check_dataset_crop(dataset: DatasetSpec, crop: int, spec: BackboneSpec) -> int:
    """A dataset's own crop (any crop some backbone takes) against the chosen model's, as
    check_crop checks --crop: the crop, or a one-line error naming the dataset file, the crop
    and the backbone."""
    problem = crop_problem(crop, spec)
    if problem:
        where = dataset.source or dataset.name
        raise SegvitError(f"{where}: crop {crop}: {problem} for {spec.label}; set another crop "
                          "there or pass --crop")  # fmt: skip
    return crop


def checkpoint_dataset(meta: dict[str, Any], dataset: str | None = None) -> DatasetSpec:
    """The dataset to score or name a checkpoint's classes by: the one asked (a name or a
    dataset file), else the one the file records it was trained on. A dataset of another
    class count than the model's is refused."""
    if dataset is not None:
        spec = load_dataset(dataset)
    elif meta.get("dataset_spec"):
        spec = DatasetSpec.from_record(str(meta["dataset_spec"]))
    elif trained_on(meta) is not None:
        spec = load_dataset(str(trained_on(meta)))
    else:
        raise SegvitError("the weights file does not say what it was trained on; pass --dataset")
    classes = meta.get("num_classes")
    if classes is not None and int(classes) != spec.num_classes:
        raise SegvitError(
            f"--dataset {dataset or spec.name}: {spec.num_classes} classes, but the "
            f"{meta.get('variant', 'model')} checkpoint predicts {classes}"
        )
    return spec


def with_backbone(
    experiment: Experiment,
    data_root: Path,
    *,
    device: str = "auto",
    num_workers: int | None = None,
) -> Experiment:
    """`experiment` with the smoke backbone named by its weights file, pretrained on the
    experiment's dataset first if it is not cached there; other recipes unchanged."""
    if experiment.recipe.pretrained != Backbone.SMOKE:
        return experiment
    if experiment.backbone is not None:  # the pretext backbone is the tiny AugReg ViT alone
        return experiment.with_recipe(pretrained=None)
    from segvit.experiments.smoke_backbone import smoke_backbone

    weights = smoke_backbone(
        data_root, dataset=experiment.dataset, device=device, num_workers=num_workers
    )
    return experiment.with_recipe(pretrained=str(weights))


def train_experiment(
    experiment: Experiment,
    *,
    work_dir: Path,
    data_root: Path,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    num_workers: int | None = None,
    with_eval: bool = True,
    tensorboard: bool = False,
) -> TrainResult:
    """Build everything `experiment` names and train it; evaluation every eval_interval."""
    experiment = with_backbone(experiment, Path(data_root), device=device, num_workers=num_workers)
    model = experiment.build_model()
    train_set = SegDataset(experiment.dataset, Path(data_root), "train", transform=None)
    cfg = TrainConfig(
        recipe=experiment.recipe,
        work_dir=str(work_dir),
        record=experiment.record(),
        device=device,
        resume=resume,
        tensorboard=tensorboard,
        overwrite=overwrite,
        **({} if num_workers is None else {"num_workers": num_workers}),
    )
    evaluate_fn = None
    if with_eval:

        def evaluate_fn(net: torch.nn.Module) -> dict[str, Any]:
            return evaluate(
                net, experiment.dataset, experiment.eval, data_root=data_root, progress=False
            )

    return train(
        cfg,
        model=model,
        train_set=train_set,
        loss_fn=experiment.criterion(),
        transform=TrainTransform(experiment.dataset, experiment.crop, norm=model.norm),
        evaluate_fn=evaluate_fn,
    )
