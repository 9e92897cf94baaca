"""Predictions as pictures: the class map over the image with a legend, and the raw labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: E402

from segvit.data.classes import class_names, palette  # noqa: E402
from segvit.data.info import dataset_info  # noqa: E402
from segvit.data.transforms import NORM_MEAN, NORM_STD  # noqa: E402
from segvit.errors import SegvitError  # noqa: E402
from segvit.fileio import atomic_write  # noqa: E402
from segvit.inference import MS_SCALES, infer_labels  # noqa: E402
from segvit.modeling.segmentor import Segmentor  # noqa: E402


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, upright (EXIF orientation applied)."""
    try:
        with Image.open(path) as image:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"))  # writable copy
    except FileNotFoundError:
        raise SegvitError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as err:
        raise SegvitError(f"{path}: not a readable image ({err})") from None


def segment(model: Segmentor, rgb: np.ndarray, *, multi_scale: bool = False) -> np.ndarray:
    """The (H, W) class map of one RGB image, with the dataset's test settings."""
    info = dataset_info(model.meta.dataset)
    device = next(model.parameters()).device
    image = torch.from_numpy(rgb).to(device).permute(2, 0, 1).float()
    mean = torch.tensor(NORM_MEAN, device=device)[:, None, None]
    std = torch.tensor(NORM_STD, device=device)[:, None, None]
    crop = model.meta.crop
    labels = infer_labels(
        model.predict,
        ((image - mean) / std)[None],
        num_classes=model.meta.num_classes,
        crop=crop,
        stride=info.stride_for(crop),
        base_scale=info.base_scale_for(crop),
        scales=MS_SCALES if multi_scale else (1.0,),
        flip=multi_scale,
    )
    return labels[0].cpu().numpy()


def save_prediction(
    rgb: np.ndarray, classes: np.ndarray, dataset: str, out_dir: Path, stem: str
) -> tuple[Path, Path]:
    """Write STEM_overlay.png (palette over the image, legend of the classes present) and
    STEM_labels.png (raw class indices, 8- or 16-bit)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = palette(dataset)
    names = class_names(dataset)
    labels_path = out_dir / f"{stem}_labels.png"
    depth = np.uint8 if classes.max(initial=0) < 256 else np.uint16
    atomic_write(
        labels_path, lambda f: Image.fromarray(classes.astype(depth)).save(f, format="PNG")
    )

    overlay = (0.45 * rgb + 0.55 * colours[classes]).astype(np.uint8)
    present, counts = np.unique(classes, return_counts=True)
    order = present[np.argsort(-counts)]
    height, width = rgb.shape[:2]
    fig = plt.figure(figsize=(max(4.0, width / 100) + 2.4, max(3.0, height / 100)), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1 - 2.4 / fig.get_figwidth(), 1.0))
    ax.imshow(overlay)
    ax.axis("off")
    handles = [Patch(color=colours[c] / 255, label=names[c]) for c in order[:20]]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    overlay_path = out_dir / f"{stem}_overlay.png"
    atomic_write(overlay_path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return overlay_path, labels_path
