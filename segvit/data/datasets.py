"""Reading a prepared dataset: where its tree lives, its (image, label) pairs, one sample.

The trees are mmsegmentation's standard layouts, so data prepared for mmsegmentation is read
as is. `read_pair` is the one place an image and its label are decoded: the image through
segvit.data.imageio (every mode to RGB, EXIF rotation), the label checked against the class
count and turned into training ids (reduce_zero_label: 0 -> 255 ignored, the rest shift down
by one). Augmentation is not done here: the engine seeds it per (seed, epoch, index) with
segvit.data.transforms.sample_rng.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from segvit.data.imageio import exif_orientation, open_image, read_stored, upright
from segvit.data.info import IGNORE_INDEX, DatasetSpec
from segvit.errors import SegvitError

# References: mmsegmentation 0.24 ADE20KDataset / COCOStuffDataset / PascalContextDataset
# (folder layout, label suffixes, reduce_zero_label).

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# (image uint8 HxWx3, label uint8 HxW) -> (image, label), deterministic (no random draws).
Transform = Callable[[np.ndarray, np.ndarray], tuple]


def list_pairs(info: DatasetSpec, tree: Path, split: str) -> list[tuple[Path, Path]]:
    """Sorted (image, label) paths of one split ("train" or "val") of the dataset whose
    folder is `tree`; one error naming the first unpaired file."""
    where = info.split(split)
    images_dir, labels_dir = tree / where.images, tree / where.labels
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise SegvitError(f"{folder} is missing; {info.how_to_get()}")
    if where.listing is not None:
        images = _images(images_dir)
        return _listed(tree / where.listing, images, images_dir, labels_dir, where.label_suffix)
    return pair_by_stem(images_dir, labels_dir, where.label_suffix)


def pair_by_stem(images_dir: Path, labels_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
    """Every image of `images_dir` with the label STEM + `suffix` of `labels_dir`, sorted;
    one error naming the first image without a label or label without an image."""
    images = _images(images_dir)
    if Path(images_dir) == Path(labels_dir):  # masks beside their images: not images
        images = {s: p for s, p in images.items() if not p.name.endswith(suffix)}
    labels = {p.name: p for p in _files(labels_dir) if p.name.endswith(suffix)}
    for stem, image in sorted(images.items()):
        if stem + suffix not in labels:
            expected = labels_dir / (stem + suffix)
            raise SegvitError(f"image {image} has no label (expected {expected})")
    stems = set(images)
    for name, label in sorted(labels.items()):
        if name[: -len(suffix)] not in stems:
            raise SegvitError(f"label {label} has no image in {images_dir}")
    return [(images[stem], labels[stem + suffix]) for stem in sorted(images)]


def _images(folder: Path) -> dict[str, Path]:
    """The images of `folder` by stem."""
    return {p.stem: p for p in _files(folder) if p.suffix.lower() in IMAGE_SUFFIXES}


def _listed(
    listing: Path, images: dict[str, Path], images_dir: Path, labels_dir: Path, suffix: str
) -> list[tuple[Path, Path]]:
    """The pairs of the stems a list file names, each checked to exist."""
    if not listing.is_file():
        raise SegvitError(f"{listing} is missing")
    pairs = []
    for stem in sorted({line.strip() for line in listing.read_text().splitlines()} - {""}):
        if stem not in images:
            raise SegvitError(
                f"{images_dir / stem} (.jpg, .jpeg or .png) is missing (listed in {listing})"
            )
        label = labels_dir / (stem + suffix)
        if not label.is_file():
            raise SegvitError(f"{label} is missing (listed in {listing})")
        pairs.append((images[stem], label))
    return pairs


def _files(folder: Path) -> list[Path]:
    """Regular files of `folder`, hidden ones (.DS_Store and the like) left out."""
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if e.is_file() and not e.name.startswith(".")]


def read_label(path: Path, info: DatasetSpec) -> np.ndarray:
    """(H, W) uint8 training ids of the label at `path`, checked against `info`'s classes."""
    with open_image(path, what="label") as img:
        mode, raw = img.mode, np.asarray(img)
    if mode == "RGB" and (raw[..., 0] == raw[..., 1]).all() and (raw[..., 0] == raw[..., 2]).all():
        raw = raw[..., 0]  # a grey label saved as RGB
    elif mode not in ("L", "P", "1") and not mode.startswith("I"):
        raise SegvitError(
            f"{path}: label image has mode {mode}; expected one channel of class ids (L or P PNG)"
        )
    top = info.num_classes if info.reduce_zero_label else info.num_classes - 1
    if raw.size and (int(raw.max()) > top or int(raw.min()) < 0):
        bad = np.unique(raw[((raw > top) | (raw < 0)) & (raw != info.ignore_index)])
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:5])
            raise SegvitError(
                f"{path}: label ids {shown} are outside 0..{top} ({info.ignore_index} = ignore) "
                f"for {info.name}"
            )
    return _training_ids(info.num_classes, info.reduce_zero_label, info.ignore_index)[raw]


@functools.cache
def _training_ids(num_classes: int, reduce_zero_label: bool, ignore_index: int) -> np.ndarray:
    """File id -> training id, as a lookup table: the classes keep their ids (one less with
    reduce_zero_label, where 0 is ignored); the ignore id becomes IGNORE_INDEX."""
    table = np.full(256, IGNORE_INDEX, np.uint8)
    if reduce_zero_label:
        table[1 : num_classes + 1] = np.arange(num_classes)
    else:
        table[:num_classes] = np.arange(num_classes)
    table[ignore_index] = IGNORE_INDEX
    return table


def read_pair(
    image_path: Path, label_path: Path, info: DatasetSpec
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image and (H, W) uint8 training-id label, checked to match.

    EXIF rotation is applied to the image as mmsegmentation's loader does; when only the
    stored orientation matches the label, the label was drawn on the stored pixels and the
    image is kept as stored.
    """
    image, orientation = read_stored(image_path)
    label = read_label(label_path, info)
    size = (label.shape[1], label.shape[0])
    turned = upright(image, orientation)
    if turned.size == size or image.size != size:
        image = turned
    if image.size != size:
        raise SegvitError(
            f"{image_path} is {image.size[0]}x{image.size[1]} but its label {label_path} is "
            f"{size[0]}x{size[1]}"
        )
    return np.asarray(image), label


def check_pair(image_path: Path, label_path: Path, info: DatasetSpec) -> None:
    """`read_pair`'s checks at a fraction of the cost: JPEGs decode at 1/8 scale.

    A reduced-scale decode still reads every byte of the file, so a truncated or corrupt
    image fails here as it would in training.
    """
    with open_image(image_path) as img:
        stored, orientation = img.size, exif_orientation(img)
        img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
        img.load()
    label = read_label(label_path, info)
    size = (label.shape[1], label.shape[0])
    turned = stored[::-1] if orientation in (5, 6, 7, 8) else stored
    if size not in (stored, turned):
        raise SegvitError(
            f"{image_path} is {stored[0]}x{stored[1]} but its label {label_path} is "
            f"{size[0]}x{size[1]}"
        )


def check_pairs(pairs: list[tuple[Path, Path]], info: DatasetSpec, *, progress: bool) -> None:
    """`check_pair` on every pair, on a thread pool, with a progress bar; the first problem
    is raised."""
    with ThreadPoolExecutor() as pool:
        checks = pool.map(lambda pair: check_pair(*pair, info), pairs)
        for _ in tqdm(checks, total=len(pairs), desc="verifying", unit="pair",
                      disable=None if progress else True):  # fmt: skip
            pass


class SegDataset(torch.utils.data.Dataset):
    """One split of a prepared dataset: sample `index` is its decoded (image, label) pair.

    It only reads. Training wraps it in segvit.engine.distributed.SeededDataset, which draws
    each sample's augmentation from `sample_rng(seed, epoch, index)`; evaluation reads the
    decoded arrays and resizes and normalises them itself (segvit.inference).

    Arguments:
        info: the dataset's facts (segvit.data.info).
        root: the data root holding a built-in set's folder (`DatasetSpec.root`).
        split: "train" or "val".
        transform: callable (image uint8 HxWx3, label uint8 HxW) -> (image, label) without
            randomness, or None to return the decoded uint8 arrays.
    """

    def __init__(
        self, info: DatasetSpec, root: Path, split: str, transform: Transform | None = None
    ):
        info.split(split)  # an unknown split name fails first
        tree = info.root(root)
        if not tree.is_dir():
            raise SegvitError(f"no {info.name} data at {tree}; {info.how_to_get(root)}")
        self.info, self.transform = info, transform
        self.pairs = list_pairs(info, tree, split)
        if not self.pairs:
            raise SegvitError(f"{tree} has no {split} images; {info.how_to_get()}")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image_path, label_path = self.pairs[index]
        image, label = read_pair(image_path, label_path, self.info)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return {"image": image, "label": label, "path": str(image_path)}
