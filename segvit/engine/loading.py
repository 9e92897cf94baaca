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
    try:
        variant, crop = str(meta["variant"]), int(meta["crop"])
        num_classes, tiny = int(meta["num_classes"]), bool(meta.get("tiny", False))
    except KeyError as err:
        raise SegvitError(f"{path}: weights file has no {err} in its metadata") from None
    backbone = meta.get("backbone") or None
    try:
        layers = tuple(int(i) for i in str(meta.get("layers") or "").split(",") if i) or None
    except ValueError:
        raise SegvitError(f"{path}: metadata layers {meta['layers']!r}: expected 5,7,11") from None
    model = build_model(
        variant, num_classes=num_classes, crop=crop, tiny=tiny, backbone=backbone, layers=layers
    )
    says = f"the model its metadata describes ({variant}, {num_classes} classes, crop {crop}, " \
        f"tiny {tiny}{f', backbone {backbone}' if backbone else ''})"  # fmt: skip
    load_exactly(model, state, path, says)
    model.use_norm(recorded_norm(meta, path))
    if meta.get("frozen"):
        model.freeze_backbone()
    return model.to(device).eval(), dict(meta)


def recorded_norm(meta: Mapping[str, Any], path: Path | str) -> Normalization:
    """The mean/std a weights file was trained with. Files that record none were all trained
    with AugReg's 127.5/127.5 (segvit before the backbone families, and the release)."""
    if not meta.get("norm_mean"):
        return AUGREG_NORM
    try:
        mean = tuple(float(m) for m in str(meta["norm_mean"]).split(","))
        std = tuple(float(s) for s in str(meta["norm_std"]).split(","))
        return Normalization(mean, std)  # type: ignore[arg-type]
    except (KeyError, ValueError):
        said = f"{meta.get('norm_mean')!r} / {meta.get('norm_std')!r}"
        raise SegvitError(f"{path}: metadata norm_mean / norm_std {said}: expected 3 "
                          "comma-separated means and 3 positive stds") from None  # fmt: skip


def trained_on(meta: Mapping[str, Any]) -> str | None:
    """The dataset a weights file says it was trained on (files before 0.2: "dataset")."""
    name = meta.get("trained_on", meta.get("dataset"))
    return None if name is None else str(name)
