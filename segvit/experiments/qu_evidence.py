"""The QU evidence beside the smoke table: a trained Shrunk row probed against its start
and a random backbone (the probes are segvit.analysis.qu_probe's)."""

from __future__ import annotations

from pathlib import Path

import torch

from segvit.analysis.qu_probe import ShrunkEvidence, probe_images, probe_qu
from segvit.engine.loading import load_checkpoint
from segvit.experiments.spec import resolve, with_backbone


@torch.no_grad()
def shrunk_evidence(
    weights: Path, data_root: Path, *, max_images: int | None = 50
) -> ShrunkEvidence:
    """Probe a smoke Shrunk row's trained `weights` beside its start and a random backbone."""
    trained, meta = load_checkpoint(weights)
    experiment = resolve(meta["variant"], recipe=meta.get("recipe", "smoke"))
    experiment = with_backbone(experiment, data_root)
    start = experiment.build_model()  # seeded by the recipe: the row's very first weights
    random = experiment.with_recipe(pretrained=None).build_model()
    images = probe_images(
        experiment.dataset, data_root, crop=experiment.crop, max_images=max_images
    )
    q_start, q_trained = start.head.queries.weight, trained.head.queries.weight
    change = ((q_trained - q_start).norm(dim=1) / q_start.norm(dim=1)).mean()
    return ShrunkEvidence(
        random_backbone=probe_qu(random, images),
        start=probe_qu(start, images),
        trained=probe_qu(trained, images),
        query_change=float(change),
    )
