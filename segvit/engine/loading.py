"""A weights file back into a model: `segvit train`'s files and the authors' releases alike."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from segvit.engine.checkpoint import load_weights
from segvit.errors import SegvitError
from segvit.modeling.convert import convert_release, is_release_checkpoint
from segvit.modeling.segmentor import Segmentor
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
    try:
        variant, crop = str(meta["variant"]), int(meta["crop"])
        num_classes, tiny = int(meta["num_classes"]), bool(meta.get("tiny", False))
    except KeyError as err:
        raise SegvitError(f"{path}: weights file has no {err} in its metadata") from None
    model = build_model(variant, num_classes=num_classes, crop=crop, tiny=tiny)
    says = f"the model its metadata describes ({variant}, {num_classes} classes, crop {crop}, " \
        f"tiny {tiny})"  # fmt: skip
    load_exactly(model, state, path, says)
    return model.to(device).eval(), dict(meta)


def trained_on(meta: Mapping[str, Any]) -> str | None:
    """The dataset a weights file says it was trained on (files before 0.2: "dataset")."""
    name = meta.get("trained_on", meta.get("dataset"))
    return None if name is None else str(name)
