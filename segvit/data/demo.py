"""The embedded demo set: shapes on varied backgrounds, generated, in ADE20K's layout.

Deterministic from a seed, no download, a few seconds to write. It uses ADE20K's folders,
file types and label convention (0 = unlabelled, ignored through reduce_zero_label; 1..8 the
classes), so training on it runs the very code paths ADE20K does. Classes: a background and
seven shapes, each with its own colour family and texture, at varied scale, overlapping,
sometimes cut by the border; a one-pixel unlabelled band runs along every boundary, as
annotators leave in ADE20K.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from segvit.data.archives import MARKER, install, staging
from segvit.data.classes import DEMO, DEMO_PALETTE
from segvit.data.info import IGNORE_INDEX, DatasetSpec
from segvit.errors import SegvitError
from segvit.fileio import atomic_write, read_json, write_json

NAME = "demo"  # its folder under the data root, and what its marker names
DEMO_VERSION = 1  # bump when the generator changes, so older trees are regenerated
SIZE_RANGE = (160, 256)  # image sides in pixels
SHAPES = DEMO[1:]  # raw label of SHAPES[k] is k + 2 (0 unlabelled, 1 background)
_SPLITS = ("training", "validation")


def generate_demo(info: DatasetSpec, root: Path) -> Path:
    """`segvit prepare demo`: the set at the counts of its spec `info`."""
    return make_demo(root, num_train=info.train.count or 0, num_val=info.val.count or 0)


def make_demo(root: Path, *, seed: int = 0, num_train: int, num_val: int) -> Path:
    """Write the demo set to `root`/demo (atomically) and return that folder.

    A tree already there with the same seed and counts is kept as is; one written by an
    older generator or other arguments is replaced; anything not written by segvit is an
    error rather than overwritten.
    """
    root = Path(root)
    tree = root / NAME
    want = {"dataset": NAME, "version": DEMO_VERSION, "seed": seed,
            "counts": {"training": num_train, "validation": num_val}}  # fmt: skip
    found = read_json(tree / MARKER)
    if found == want:
        return tree
    if tree.exists() and not (isinstance(found, dict) and found.get("dataset") == NAME):
        raise SegvitError(f"{tree} exists and was not written by segvit; move it away first")
    root.mkdir(parents=True, exist_ok=True)
    with staging(root, NAME) as scratch:
        built = scratch / NAME
        write_demo(built, seed=seed, counts=(num_train, num_val))
        for split, count in zip(_SPLITS, (num_train, num_val), strict=True):
            images = sorted(p.stem for p in (built / "images" / split).glob("*.jpg"))
            labels = sorted(p.stem for p in (built / "annotations" / split).glob("*.png"))
            if len(images) != count or images != labels:
                raise SegvitError(f"the demo generator wrote a wrong count into {built}")
        write_json(built / MARKER, want)
        if tree.exists():
            os.rename(tree, scratch / "replaced")
        install(built, tree)
    return tree


def write_demo(tree: Path, *, seed: int, counts: tuple[int, int]) -> None:
    """Write images/<split>/*.jpg and annotations/<split>/*.png for both splits."""
    for split_index, (split, count) in enumerate(zip(_SPLITS, counts, strict=True)):
        (tree / "images" / split).mkdir(parents=True)
        (tree / "annotations" / split).mkdir(parents=True)
        for index in range(count):
            # One generator per sample: any sample can be rebuilt alone, in any order.
            image, label = demo_sample(np.random.default_rng((seed, split_index, index)))
            stem = f"demo_{split[:5]}_{index + 1:08d}"
            Image.fromarray(image).save(tree / "images" / split / f"{stem}.jpg", quality=92)
            Image.fromarray(label).save(tree / "annotations" / split / f"{stem}.png")


def demo_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (H, W, 3) uint8 image and its (H, W) uint8 raw label (0 unlabelled, 1..8)."""
    height, width = (int(v) for v in rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1, size=2))
    image = _background(rng, height, width)  # (H, W, 3) float
    label = np.ones((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 6))):
        shape = int(rng.integers(len(SHAPES)))
        mask = _shape_mask(SHAPES[shape], rng, height, width)
        base = np.array(DEMO_PALETTE[shape + 1], np.float32)
        colour = np.clip(base + rng.uniform(-35, 35, size=3), 0, 255)
        shade = _texture(shape, rng, height, width)  # (H, W) multiplier
        image[mask] = colour * shade[mask][:, None]
        label[mask] = shape + 2
    edge = np.zeros_like(label, dtype=bool)  # a pixel whose right or lower neighbour differs
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    edge[:-1, :] |= label[:-1, :] != label[1:, :]
    label[edge] = 0
    image += rng.normal(0, 4, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Muted colours in one of three styles: gradient, smooth blotches, faint stripes."""
    grey = rng.uniform(60, 190)
    first, second = (0.55 * grey + 0.45 * rng.uniform(30, 220, size=3) for _ in range(2))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    style = int(rng.integers(3))
    if style == 0:
        angle = rng.uniform(0, math.pi)
        t = (x * math.cos(angle) + y * math.sin(angle)) / (width + height)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif style == 1:
        coarse = rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7)))).astype(np.float32)
        t = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
        t = np.clip(t, 0, 1)
    else:
        period = rng.uniform(10, 30)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (x + rng.uniform(0.3, 1.0) * y) / period)
        t *= 0.4
    return first * (1 - t[..., None]) + second * t[..., None]


def _shape_mask(shape: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of one shape at a random place, size and rotation."""
    radius = rng.uniform(14, 0.42 * min(height, width))
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    angle = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)

    def ring(r: float, count: int, start: float = angle) -> list[tuple[float, float]]:
        turns = [start + 2 * math.pi * k / count for k in range(count)]
        return [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in turns]

    def disc(r: float, fill: int, dx: float = 0.0, dy: float = 0.0) -> None:
        draw.ellipse((cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r), fill=fill)

    if shape == "disc":
        disc(radius, 255)
    elif shape == "square":
        draw.polygon(ring(radius, 4), fill=255)
    elif shape == "triangle":
        draw.polygon(ring(radius, 3), fill=255)
    elif shape == "ring":
        disc(radius, 255)
        disc(radius * 0.55, 0)
    elif shape == "star":
        outer, inner = ring(radius, 5), ring(radius * 0.42, 5, angle + math.pi / 5)
        draw.polygon([p for pair in zip(outer, inner, strict=True) for p in pair], fill=255)
    elif shape == "cross":
        arm = radius * 0.32
        for turn in (angle, angle + math.pi / 2):
            u, v = (math.cos(turn), math.sin(turn)), (-math.sin(turn), math.cos(turn))
            corners = ((radius, arm), (radius, -arm), (-radius, -arm), (-radius, arm))
            draw.polygon([(cx + a * u[0] + b * v[0], cy + a * u[1] + b * v[1])
                          for a, b in corners], fill=255)  # fmt: skip
    elif shape == "crescent":
        disc(radius, 255)
        offset = radius * 0.45
        disc(radius * 0.85, 0, offset * math.cos(angle), offset * math.sin(angle))
    else:
        raise SegvitError(f"unknown demo shape {shape!r}")
    return np.asarray(canvas) > 0


def _texture(shape: int, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) brightness multiplier: each shape class has its own texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(5, 11)
    phase = rng.uniform(0, 2 * math.pi)
    kind = shape % 4  # four textures over seven shapes: texture alone does not give the class
    if kind == 0:  # smooth shading
        return 0.85 + 0.15 * np.cos(2 * math.pi * y / (4 * height) + phase)
    if kind == 1:  # stripes
        return 0.8 + 0.2 * (np.sin(2 * math.pi * (x + y * (shape % 3 - 1)) / period + phase) > 0)
    if kind == 2:  # checks
        return 0.8 + 0.2 * (((x // period) + (y // period)) % 2)
    return 0.75 + 0.35 * rng.random((height, width)).astype(np.float32)  # speckle


def save_preview(info: DatasetSpec, root: Path, out: Path, *, count: int = 6) -> Path:
    """Save a picture of `count` validation samples over their labels (palette overlay).

    Reads through `read_pair`, the reader every dataset uses, so the picture shows what the
    model is given. Unlabelled (255) pixels are left uncoloured. The file type follows the
    suffix of `out` (PNG without one); the file is written atomically.
    """
    # Imported here: slow to import, and only the picture needs it. No pyplot: no global
    # backend or figure registry.
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from segvit.data.datasets import list_pairs, read_pair  # torch: not for the catalogue

    kind = out.suffix[1:].lower() or "png"
    if kind not in FigureCanvasBase.get_supported_filetypes():
        raise SegvitError(f"{out}: cannot save a picture as .{kind}; use .png, .jpg, .pdf or .svg")
    pairs = list_pairs(info, info.root(root), "val")[:count]
    if not pairs:
        raise SegvitError(f"no {info.name} validation samples under {root} to preview")
    colours, names, shown = info.colours, info.classes, set()
    figure = Figure(figsize=(2.2 * len(pairs), 4.8))
    axes = figure.subplots(2, len(pairs), squeeze=False)
    for column, (image_path, label_path) in enumerate(pairs):
        image, label = read_pair(image_path, label_path, info)
        known = label != IGNORE_INDEX
        shown.update(int(k) for k in np.unique(label[known]))
        overlay = image.astype(np.float32)
        overlay[known] = 0.4 * overlay[known] + 0.6 * colours[label[known]]
        for row, picture in enumerate((image, overlay.astype(np.uint8))):
            axes[row, column].imshow(picture)
            axes[row, column].axis("off")
        axes[0, column].set_title(image_path.stem, fontsize=7)
    handles = [Patch(color=colours[k] / 255, label=names[k]) for k in sorted(shown)[:24]]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8)
    figure.suptitle(f"{info.name}: images (top) and labels over them (bottom)", fontsize=10)
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda file: figure.savefig(file, format=kind, dpi=110))
    return out
