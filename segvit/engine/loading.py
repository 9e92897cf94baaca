"""A weights file back into a model: `segvit train`'s files and the authors' releases alike."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from segvit.engine.checkpoint import load_weights
from segvit.modeling.convert import convert_release, is_release_checkpoint
from segvit.modeling.segmentor import ModelMeta, Segmentor, norm_of_record
from segvit.modeling.specs import AUGREG_NORM, Normalization
from segvit.modeling.variants import build_model
from segvit.modeling.weights import load_exactly


def load_checkpoint(
    path: Path | str, *, device: torch.device | str = "cpu"
) -> tuple[Segmentor, dict[str, Any]]:
    """Rebuild the model a weights file was trained as, load its weights (eval mode); the
    model and the file's metadata (see `trained_on`). `release:NAME` or an mmseg file of the
    authors' release is converted on the fly (segvit.modeling.convert)."""
    if is_release_checkpoint(path):
        state, meta = convert_release(path)
    else:
        state, meta = load_weights(Path(path))
    recorded = ModelMeta.from_dict(meta, path)
    variant, num_classes, crop = recorded.variant, recorded.num_classes, recorded.crop
    tiny, backbone = recorded.tiny, recorded.backbone
    model = build_model(
        variant, num_classes=num_classes, crop=crop, tiny=tiny, backbone=backbone,
        layers=recorded.layers,
    )  # fmt: skip
    says = f"the model its metadata describes ({variant}, {num_classes} classes, crop {crop}, " \
        f"tiny {tiny}{f', backbone {backbone}' if backbone else ''})"  # fmt: skip
    load_exactly(model, state, path, says)
    model.use_norm(recorded.norm or AUGREG_NORM)
    if recorded.frozen:
        model.freeze_backbone()
    return model.to(device).eval(), dict(meta)


def recorded_norm(meta: Mapping[str, Any], path: Path | str) -> Normalization:
    """The mean/std a weights file was trained with. Files that record none were all trained
    with AugReg's 127.5/127.5 (segvit before the backbone families, and the release)."""
    return norm_of_record(meta, path) or AUGREG_NORM


def trained_on(meta: Mapping[str, Any]) -> str | None:
    """The dataset a weights file says it was trained on (files before 0.2: "dataset")."""
    name = meta.get("trained_on", meta.get("dataset"))
    return None if name is None else str(name)
