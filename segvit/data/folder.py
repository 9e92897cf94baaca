"""`segvit prepare folder`: a plain folder of images and masks -> a verified dataset file.

    segvit prepare folder --images IMG_DIR --labels MASK_DIR --classes classes.txt --out mydata

Images and masks pair by file stem (`a.jpg` with `a.png`). Where both folders hold `train/`
and `val/` subfolders, those are the splits; otherwise a seeded share of the pairs
(`--val-fraction`) becomes the validation split, listed in OUT/train.txt and OUT/val.txt.
The pixels are not copied: OUT/dataset.yaml points at the folders (paths relative to it).

Every pair is checked before anything is written (paired, equal sizes, every file decodable,
label ids within the classes or the ignore id); the first problem is one line naming the file.
Without a classes file the classes are numbered 0..K-1, K one more than the largest id found.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segvit.data.dataset_file import NAME, read_dataset_file, write_dataset_file
from segvit.data.datasets import check_pairs, pair_by_stem
from segvit.data.imageio import open_image
from segvit.data.info import IGNORE_INDEX, DatasetSpec, Split
from segvit.errors import SegvitError
from segvit.fileio import write_text

DATASET_FILE = "dataset.yaml"


def prepare_folder(
    images: Path,
    labels: Path,
    out: Path,
    *,
    classes: Path | None = None,
    name: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    label_suffix: str = ".png",
    ignore_index: int = IGNORE_INDEX,
    reduce_zero_label: bool = False,
    crop: int = 512,
    progress: bool = True,
) -> Path:
    """Verify the folder pair and write OUT/dataset.yaml (and the split lists); its path."""
    images, labels, out = Path(images).absolute(), Path(labels).absolute(), Path(out).absolute()
    for option, folder in (("--images", images), ("--labels", labels)):
        if not folder.is_dir():
            raise SegvitError(f"{option} {folder}: not a folder")
    if not 0 < val_fraction < 1:
        raise SegvitError(f"--val-fraction {val_fraction}: expected between 0 and 1")
    if out.exists() and not out.is_dir():
        raise SegvitError(f"--out {out}: a file is there; expected a folder")
    name = name or out.name
    if not NAME.match(name):
        raise SegvitError(f"--name {name!r}: expected letters, digits, '.', '_' or '-'")
    has_splits = all((f / s).is_dir() for f in (images, labels) for s in ("train", "val"))
    if has_splits:
        pairs = {s: _pairs(images / s, labels / s, label_suffix) for s in ("train", "val")}
    else:
        pairs = _split(_pairs(images, labels, label_suffix), val_fraction, seed)
    every = pairs["train"] + pairs["val"]
    if classes is not None:
        names = _read_classes(classes)
    else:
        names = _numbered_classes(every, ignore_index, reduce_zero_label, progress)

    def rel(folder: Path) -> str:
        return os.path.relpath(folder, out)

    if has_splits:
        train = Split(rel(images / "train"), rel(labels / "train"), None, label_suffix)
        val = Split(rel(images / "val"), rel(labels / "val"), None, label_suffix)
    else:
        train = Split(rel(images), rel(labels), "train.txt", label_suffix)
        val = Split(rel(images), rel(labels), "val.txt", label_suffix)
    spec = DatasetSpec(
        name=name, classes=names, crop=crop, reduce_zero_label=reduce_zero_label,
        ignore_index=ignore_index, folder=".", source=str(out / DATASET_FILE),
        train=replace(train, count=len(pairs["train"])),
        val=replace(val, count=len(pairs["val"])),
    )  # fmt: skip
    check_pairs(every, spec, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    if not has_splits:
        for split in ("train", "val"):
            write_text(out / f"{split}.txt", "".join(f"{i.stem}\n" for i, _ in pairs[split]))
    path = out / DATASET_FILE
    write_dataset_file(path, spec)  # written last: a dataset file means a verified set
    read_dataset_file(path)  # what was written reads back
    return path


def _pairs(images: Path, labels: Path, suffix: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs by stem, sorted; one error naming the first unpaired file."""
    pairs = pair_by_stem(images, labels, suffix)
    if not pairs:
        raise SegvitError(f"--images {images}: no .jpg, .jpeg or .png images")
    return pairs


def _split(
    pairs: list[tuple[Path, Path]], val_fraction: float, seed: int
) -> dict[str, list[tuple[Path, Path]]]:
    """A seeded share of the pairs for validation (at least one, and one left to train)."""
    if len(pairs) < 2:
        raise SegvitError(f"{len(pairs)} image: a train and a val split need at least 2")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    count = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    val = set(order[:count])
    return {
        "train": [p for i, p in enumerate(pairs) if i not in val],
        "val": [p for i, p in enumerate(pairs) if i in val],
    }


def _read_classes(path: Path) -> tuple[str, ...]:
    if not Path(path).is_file():
        raise SegvitError(f"--classes {path}: not a file (expected one class name a line)")
    names = tuple(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    if not names:
        raise SegvitError(f"--classes {path}: no class names")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise SegvitError(f"--classes {path}: {twice!r} is named twice")
    return names


def _numbered_classes(
    pairs: list[tuple[Path, Path]], ignore_index: int, reduce_zero_label: bool, progress: bool
) -> tuple[str, ...]:
    """Class names "0".."K-1" for the ids the labels use (the ignore id left out)."""
    top = -1
    for _, label in tqdm(pairs, desc="reading class ids", unit="label", disable=not progress):
        with open_image(label, what="label") as img:
            ids = np.unique(np.asarray(img))
        ids = ids[ids != ignore_index]
        if ids.size:
            top = max(top, int(ids.max()))
    count = top if reduce_zero_label else top + 1
    if count < 1:
        raise SegvitError("the labels hold no class ids besides the ignore id; pass --classes")
    if count > 255:
        raise SegvitError(f"labels use ids up to {top}; at most 255 classes fit 8-bit labels")
    return tuple(str(i) for i in range(count))
