"""From a checkpoint to a table's cells: one rule for trained rows and released files alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segvit.data.info import DatasetSpec
from segvit.engine.distributed import resolve_device
from segvit.engine.evaluate import EvalSettings, evaluate
from segvit.engine.loading import load_checkpoint


def table_cells(results: dict[str, Any], dataset: DatasetSpec, mode: str) -> dict[str, float]:
    """The cells one evaluation fills, rounded as the tables print them.

    `miou{K}_{mode}` is the mIoU over K classes for each class count scored: the dataset's
    own, and one fewer where it has a background class scored apart (PASCAL-Context: 60 and
    59). `miou_{mode}`, the headline, is the smaller count's: PASCAL-Context is reported over
    its 59 classes without background, by the paper and the release alike.
    """
    scored = {dataset.num_classes: float(results["mIoU"])}
    fewer = dataset.num_classes - 1
    if dataset.background is not None and f"mIoU{fewer}" in results:
        scored[fewer] = float(results[f"mIoU{fewer}"])
    cells = {f"miou{count}_{mode}": round(value, 2) for count, value in scored.items()}
    cells[f"miou_{mode}"] = cells[f"miou{min(scored)}_{mode}"]
    return cells


def score_checkpoint(
    checkpoint: Path | str,
    dataset: DatasetSpec | None,
    modes: Sequence[str],
    *,
    data_root: Path,
    max_images: int | None = None,
) -> dict[str, float]:
    """Evaluate a weights file (or `release:NAME`) ss and/or ms; its table cells. `dataset`
    None: the one the file records."""
    from segvit.experiments.spec import checkpoint_dataset

    model, meta = load_checkpoint(checkpoint, device=resolve_device("auto"))
    dataset = dataset or checkpoint_dataset(meta)
    cells: dict[str, float] = {}
    for mode in modes:
        settings = EvalSettings(multi_scale=mode == "ms", max_images=max_images)
        results = evaluate(model, dataset, settings, data_root=data_root)
        cells.update(table_cells(results, dataset, mode))
    return cells
