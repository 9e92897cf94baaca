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
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segvit.data.colour_masks import read_colours, write_id_masks
from segvit.data.dataset_file import (
    DatasetFile,
    SplitFile,
    read_class_names,
    read_dataset_file,
    to_spec,
    write_dataset_file,
)
from segvit.data.datasets import IMAGE_SUFFIXES, check_pairs, pair_by_stem
from segvit.data.imageio import open_image
from segvit.data.info import IGNORE_INDEX, DatasetSpec
from segvit.errors import SegvitError
from segvit.fileio import write_text

DATASET_FILE = "dataset.yaml"
# The option an error about a dataset file key blames (the dataset is named by --out).
OPTIONS = {"name": "--out", "classes": "--classes", "ignore_index": "--ignore-index",
           "crop": "--crop", "label_suffix": "--label-suffix"}  # fmt: skip


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
    overwrite: bool = False,
    colors: Path | None = None,
    progress: bool = True,
) -> Path:
    """Verify the folder pair and write OUT/dataset.yaml (and the split lists); its path.
    Nothing is written before every check passed; files already in OUT that differ from
    what would be written are replaced only with `overwrite`. With `colors` (a colour file,
    segvit.data.colour_masks) the masks are RGB colours: they are written as id PNGs into
    OUT/labels, which the dataset file names."""
    images, labels, out = Path(images).absolute(), Path(labels).absolute(), Path(out).absolute()
    for option, folder in (("--images", images), ("--labels", labels)):
        if not folder.is_dir():
            raise SegvitError(f"{option} {folder}: not a folder")
    if not 0 < val_fraction < 1:
        raise SegvitError(f"--val-fraction {val_fraction}: expected between 0 and 1")
    if out.exists() and not out.is_dir():
        raise SegvitError(f"--out {out}: a file is there; expected a folder")
    path = out / DATASET_FILE

    def blame(key: str) -> str:
        if key == "classes" and classes is None:
            return "the classes numbered from the label ids"
        option = OPTIONS.get(key, key)
        return f"--out {out} (the dataset's name)" if option == "--out" else option

    names = read_class_names(_class_file(classes)) if classes is not None else ["0"]
    colours = read_colours(colors) if colors is not None else None
    if colours is not None and classes is None:
        names = [str(i) for i in range(len(colours.classes))]
    palette = [list(c) for c in colours.classes] if colours is not None else None
    id_labels = labels if colours is None else out / "labels"  # where the id masks are

    def described(class_names: list[str], counts=(None, None), ignore=ignore_index) -> DatasetFile:
        return DatasetFile(
            name=name or out.name, classes=class_names, splits=_splits(images, id_labels, out,
            has_splits, counts), label_suffix=label_suffix, reduce_zero_label=reduce_zero_label,
            ignore_index=ignore, crop=crop, palette=palette,
        )  # fmt: skip

    has_splits = all((f / s).is_dir() for f in (images, labels) for s in ("train", "val"))
    # The options first, with the same checks a dataset file gets (numbered classes are
    # only known once the labels are read: their count is checked again below).
    # Without a class file, whether the ignore id is a class id waits for the numbering.
    early_ignore = ignore_index if classes is not None or not 0 <= ignore_index <= 255 else 255
    to_spec(described(names, ignore=early_ignore), path, check_paths=False, blame=blame)
    if has_splits:
        pairs = {s: _pairs(images / s, labels / s, label_suffix) for s in ("train", "val")}
    else:
        pairs = _split(_pairs(images, labels, label_suffix), val_fraction, seed)
    label_suffix = _suffix_as_found([lb for _, lb in pairs["train"] + pairs["val"]], label_suffix)
    with tempfile.TemporaryDirectory(prefix=".labels-", dir=_existing(out)) as staging:
        if colours is not None:
            label_suffix = ".png"
            pairs = {s: write_id_masks(pairs[s], colours, ignore_index, Path(colors),
                                       Path(staging) / (s if has_splits else ""))
                     for s in ("train", "val")}  # fmt: skip
        return _verify_and_write(
            out, pairs, names if classes is not None or colours is not None else None,
            described, blame, overwrite, has_splits, Path(staging) if colours else None,
            ignore_index=ignore_index, reduce_zero_label=reduce_zero_label, progress=progress,
        )  # fmt: skip


def _existing(folder: Path) -> Path:
    """`folder` or its nearest existing parent (where a staging folder may go)."""
    while not folder.exists():
        folder = folder.parent
    return folder


def _verify_and_write(
    out, pairs, names, described, blame, overwrite, has_splits, id_masks, *, ignore_index,
    reduce_zero_label, progress,
) -> Path:  # fmt: skip
    """Number the classes if need be, check every pair as the dataset describes them, then
    write the split lists, the id masks (colour masks only) and the dataset file, last."""
    path = out / DATASET_FILE
    every = pairs["train"] + pairs["val"]
    if names is None:
        names = _numbered_classes(every, ignore_index, reduce_zero_label, progress)
    counts = (len(pairs["train"]), len(pairs["val"]))
    spec = to_spec(described(names, counts), path, check_paths=False, blame=blame)
    check_pairs(every, spec, progress=progress)

    listings = {} if has_splits else {
        out / f"{s}.txt": "".join(f"{i.stem}\n" for i, _ in pairs[s]) for s in ("train", "val")
    }  # fmt: skip
    _check_replaceable(path, spec, listings, overwrite)
    if id_masks is not None and (out / "labels").exists() and not overwrite:
        raise SegvitError(f"{out / 'labels'} exists; pass --overwrite to replace its masks")
    out.mkdir(parents=True, exist_ok=True)
    for listing, text in listings.items():
        write_text(listing, text)
    if id_masks is not None:
        shutil.rmtree(out / "labels", ignore_errors=True)
        shutil.copytree(id_masks, out / "labels")
    write_dataset_file(path, spec)  # written last: a dataset file means a verified set
    read_dataset_file(path)  # what was written reads back
    return path


def _class_file(classes: Path) -> Path:
    if not Path(classes).is_file():
        raise SegvitError(f"--classes {classes}: not a file (expected one class name a line)")
    return Path(classes)


def _splits(images: Path, labels: Path, out: Path, has_splits: bool, counts) -> dict:
    def rel(folder: Path) -> str:
        return os.path.relpath(folder, out)

    if has_splits:
        return {s: SplitFile(rel(images / s), rel(labels / s), None, n)
                for s, n in zip(("train", "val"), counts, strict=True)}  # fmt: skip
    return {s: SplitFile(rel(images), rel(labels), f"{s}.txt", n)
            for s, n in zip(("train", "val"), counts, strict=True)}  # fmt: skip


def _check_replaceable(
    path: Path, spec: DatasetSpec, listings: dict[Path, str], overwrite: bool
) -> None:
    """Refuse to replace a dataset file or split list that differs from what would be
    written (a hand-edited file, another split) unless `overwrite`."""
    if overwrite:
        return
    if path.is_file():
        try:
            same = read_dataset_file(path) == spec
        except SegvitError:
            same = False
        if not same:
            raise SegvitError(
                f"{path} exists and differs from what this run would write; keep it, or pass "
                "--overwrite to replace it (and redraw the split)"
            )
    for listing, text in listings.items():
        if listing.is_file() and listing.read_text() != text:
            raise SegvitError(
                f"{listing} exists and holds another split; pass --overwrite to replace it"
            )


def _pairs(images: Path, labels: Path, suffix: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs by stem, sorted; one error naming the first file that would be
    left out or paired wrongly (a sub-folder's images, two images of one stem, JPEG masks)."""
    found = sorted(images.iterdir())
    for sub in (p for p in found if p.is_dir() and not p.name.startswith(".")):
        if any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.rglob("*")):
            raise SegvitError(
                f"--images {images}: its sub-folder {sub.name}/ holds images, which would be "
                "left out; give each folder of images on its own (or train/ and val/)"
            )
    stems: dict[str, Path] = {}
    for image in (p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        if images == labels and image.name.lower().endswith(suffix.lower()):
            continue  # a mask beside its image
        if image.stem in stems:
            raise SegvitError(
                f"--images {images}: {stems[image.stem].name} and {image.name} share one stem "
                "(one label would pair with both); rename or remove one"
            )
        stems[image.stem] = image
    jpeg = [p for p in sorted(labels.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg")]
    if jpeg and images != labels and not any(p.suffix.lower() == ".png" for p in labels.iterdir()):
        raise SegvitError(
            f"--labels {labels}: {jpeg[0].name} is a JPEG; masks must be PNG (JPEG's "
            "compression changes class ids along edges): use PNG"
        )
    suffix = _suffix_as_found(list(labels.iterdir()), suffix)
    pairs = pair_by_stem(images, labels, suffix)
    if images == labels:
        pairs = [(i, lb) for i, lb in pairs if i.stem in stems and stems[i.stem] == i]
    if not pairs:
        raise SegvitError(f"--images {images}: no .jpg, .jpeg or .png images")
    return pairs


def _suffix_as_found(labels: list[Path], suffix: str) -> str:
    """`suffix` as the label files spell it (`.PNG` for `.png`), where they all agree."""
    spelled = {p.name[-len(suffix) :] for p in labels if p.name.lower().endswith(suffix.lower())}
    return spelled.pop() if len(spelled) == 1 and suffix not in spelled else suffix


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


def _numbered_classes(
    pairs: list[tuple[Path, Path]], ignore_index: int, reduce_zero_label: bool, progress: bool
) -> list[str]:
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
    return [str(i) for i in range(count)]  # their count is checked as a dataset file's
