"""Predictions as pictures: the class map over the image with a legend, and the raw labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry
from matplotlib.patches import Patch
from PIL import Image

from segvit.data.imageio import read_rgb
from segvit.data.info import DatasetSpec
from segvit.engine.backend import model_device, resolve_precision, score_function
from segvit.fileio import atomic_write
from segvit.inference import InferenceSettings, infer, infer_labels, window_batch
from segvit.modeling.segmentor import Segmentor


def segment(
    model: Segmentor,
    rgb: np.ndarray,
    dataset: DatasetSpec,
    *,
    multi_scale: bool = False,
    precision: str = "fp32",
    scores: bool = False,
) -> np.ndarray:
    """The (H, W) class map of one RGB image, with the dataset's test settings; with `scores`
    the (K, H, W) float32 class probabilities instead. `model`: a Segmentor or an
    OnnxSegmentor; `precision`: auto, fp32 or bf16 (segvit.engine.backend)."""
    device = model_device(model)
    settings = InferenceSettings.for_dataset(
        dataset,
        model.meta.crop,
        multi_scale=multi_scale,
        window_batch=window_batch(device),
        norm=model.norm,
    )
    score_fn = score_function(model, resolve_precision(precision, device))
    # The 8-bit photo goes in as it is: each scale is resized and normalised from it.
    if scores:
        return infer(score_fn, rgb, settings, device=device).cpu().numpy()
    labels = infer_labels(score_fn, rgb, settings, device=device).cpu().numpy()
    # Class indices fit 16 bits (a dataset has < 65536 classes): a quarter of int64's bytes.
    return labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)


def save_prediction(
    rgb: np.ndarray, classes: np.ndarray, dataset: DatasetSpec, out_dir: Path, stem: str
) -> tuple[Path, Path]:
    """Write STEM_overlay.png (palette over the image, legend of the classes present) and
    STEM_labels.png (raw class indices, 8- or 16-bit)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = dataset.colours
    names = dataset.classes
    labels_path = out_dir / f"{stem}_labels.png"
    depth = np.uint8 if classes.max(initial=0) < 256 else np.uint16
    atomic_write(
        labels_path, lambda f: Image.fromarray(classes.astype(depth)).save(f, format="PNG")
    )

    overlay = blend(rgb, classes, colours)
    present, counts = np.unique(classes, return_counts=True)
    order = present[np.argsort(-counts)]
    height, width = rgb.shape[:2]
    fig = Figure(figsize=(max(4.0, width / 100) + 2.4, max(3.0, height / 100)), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1 - 2.4 / fig.get_figwidth(), 1.0))
    ax.imshow(overlay)
    ax.axis("off")
    handles = [Patch(color=colours[c] / 255, label=names[c]) for c in order[:20]]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    overlay_path = out_dir / f"{stem}_overlay.png"
    atomic_write(overlay_path, lambda f: fig.savefig(f, format="png"))
    return overlay_path, labels_path


def blend(rgb: np.ndarray, classes: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: 45% image, 55% class colour, in 16-bit integers (float64 would take
    24 bytes a pixel)."""
    overlay = rgb.astype(np.uint16) * 45
    overlay += colours[classes].astype(np.uint16) * 55
    return (overlay // 100).astype(np.uint8)


def output_names(paths: Sequence[Path]) -> list[str]:
    """One output name per image: its stem, with -2, -3, ... where stems repeat (a/x.jpg and
    b/x.jpg), so no image's outputs overwrite another's."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        names.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return names


def predict_images(
    model: Segmentor,
    paths: Sequence[Path],
    dataset: DatasetSpec,
    out_dir: Path,
    *,
    multi_scale: bool = False,
    precision: str = "fp32",
) -> Iterator[tuple[Path, Path, Path]]:
    """Segment each image and save its pictures; yields (image, overlay, labels) as each is
    written, so an interrupted call keeps every finished image's outputs."""
    for path, name in zip(paths, output_names(paths), strict=True):
        rgb = read_rgb(path)
        classes = segment(model, rgb, dataset, multi_scale=multi_scale, precision=precision)
        overlay, labels = save_prediction(rgb, classes, dataset, out_dir, name)
        yield path, overlay, labels
