"""Table rows served by the authors' released checkpoints: which file a row uses, scoring
it, and the cells it fills. `segvit reproduce release` and `--weights release` use these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segvit.data.info import get_dataset
from segvit.engine.distributed import resolve_device
from segvit.engine.evaluate import EvalSettings, evaluate, load_checkpoint, trained_on
from segvit.engine.recipe import Recipe
from segvit.experiments.config import RowConfig
from segvit.experiments.spec import resolve
from segvit.modeling.release import ReleasedModel, get_release, release_for

RELEASE_NOTE = (
    "Accuracy of rows with a released model (status 'done (released NAME)') comes from the "
    "authors' checkpoints (huggingface.co/Akide/SegViTv1, converted by segvit), not from "
    "training here; `segvit weights fetch all` gets them."
)


def row_release(row: RowConfig) -> ReleasedModel | None:
    """The released model a row names, or the one of its variant, dataset and crop."""
    if row.release is not None:
        return get_release(row.release)
    assert row.variant is not None
    crop = resolve(row.variant, row.dataset, crop=row.crop).crop  # the dataset's when None
    return release_for(row.variant, row.dataset, crop)


def eval_release(
    release: ReleasedModel, recipe: Recipe, modes: Sequence[str], *, data_root: Path
) -> dict[str, float]:
    """Score a released file ss and/or ms on the dataset its class count belongs to."""
    model, meta = load_checkpoint(f"release:{release.name}", device=resolve_device("auto"))
    dataset = get_dataset(trained_on(meta) or release.dataset)
    measured: dict[str, float] = {}
    for mode in modes:
        settings = EvalSettings(multi_scale=mode == "ms", max_images=recipe.eval_max_images)
        results = evaluate(model, dataset, settings, data_root=data_root)
        measured.update(release_measures(results, dataset.name, mode))
    return measured


def release_measures(results: dict[str, Any], dataset: str, mode: str) -> dict[str, float]:
    """Table cells from one evaluation. The release reports PASCAL-Context over 59 classes,
    so `miou_*` is that figure there (a 60-class model without background, or a 59-class
    one); tables with 59/60 columns get both where both exist."""
    miou = round(float(results["mIoU"]), 2)
    if "mIoU59" in results:  # a 60-class model
        miou59 = round(float(results["mIoU59"]), 2)
        return {f"miou_{mode}": miou59, f"miou59_{mode}": miou59, f"miou60_{mode}": miou}
    if dataset == "pascal-context-59":
        return {f"miou_{mode}": miou, f"miou59_{mode}": miou}
    return {f"miou_{mode}": miou}
