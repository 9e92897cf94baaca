"""Table rows served by the authors' released checkpoints: which file a row uses, scoring
it, and the cells it fills. `segvit reproduce release` and `--weights release` use these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from segvit.engine.recipe import Recipe
from segvit.experiments.config import RowConfig
from segvit.experiments.scoring import score_checkpoint
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
    return score_checkpoint(
        release.checkpoint, None, modes, data_root=data_root,
        max_images=recipe.eval_max_images,
    )  # fmt: skip
