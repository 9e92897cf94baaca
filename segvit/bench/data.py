"""`segvit bench data`: images per second of the training pipeline in one worker.

One worker means one process and one thread, as a DataLoader worker runs (torch sets one
thread per worker): the figure times decoding plus the paper's transforms at the paper's
crop, so workers needed = GPU images per second / this figure.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segvit.data.catalog import DATASETS, load_dataset
from segvit.data.datasets import SegDataset, read_pair
from segvit.data.info import DatasetSpec
from segvit.data.transforms import TrainTransform, sample_rng
from segvit.errors import SegvitError

ADE_SIZE = (683, 512)  # (width, height) of a typical ADE20K image


@dataclass(frozen=True)
class PipelineResult:
    """Per-image times of the data pipeline (segvit.bench.train_step times the model)."""

    dataset: str
    crop: int
    images: int
    read_ms: float  # decode + checks per image
    transform_ms: float  # resize, crop, flip, photometric, normalise, pad per image

    @property
    def images_per_s(self) -> float:
        return 1000.0 / (self.read_ms + self.transform_ms)


def bench_pipeline(
    info: DatasetSpec, root: Path, *, crop: int | None = None, num_images: int = 50, seed: int = 0
) -> PipelineResult:
    """Time `num_images` training samples of `info` under `root` in this one thread.

    Sample i is augmented as training augments it: in epoch i // len(split), by `sample_rng`.
    """
    crop = crop or info.crop
    transform = TrainTransform(info, crop)
    pairs = SegDataset(info, root, "train").pairs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # Warm-up: first-call allocations and lazy imports are not the steady state.
        transform(*read_pair(*pairs[0], info), sample_rng(seed, 0, 0))
        read = spent = 0.0
        for index in range(num_images):
            image_path, label_path = pairs[index % len(pairs)]
            start = time.perf_counter()
            image, label = read_pair(image_path, label_path, info)
            middle = time.perf_counter()
            transform(image, label, sample_rng(seed, *divmod(index, len(pairs))))
            read, spent = read + middle - start, spent + time.perf_counter() - middle
    finally:
        torch.set_num_threads(threads)
    return PipelineResult(info.name, crop, num_images, 1000 * read / num_images,
                          1000 * spent / num_images)  # fmt: skip


def make_synthetic_ade(root: Path, *, count: int = 50, seed: int = 0) -> DatasetSpec:
    """Write `count` ADE20K-sized JPEGs and labels in ADE20K's layout under `root`.

    Photo-like content (smooth regions, edges, mild noise) so JPEG decoding costs what real
    photos cost; labels are regions of ~10 of the 150 classes. Returns the ADE20K info.
    """
    info = DATASETS["ade20k"]
    tree = info.root(root)
    width, height = ADE_SIZE
    for split, n in ((info.train, count), (info.val, 1)):
        (tree / split.images).mkdir(parents=True, exist_ok=True)
        (tree / split.labels).mkdir(parents=True, exist_ok=True)
        for index in range(n):
            rng = np.random.default_rng((seed, index, split is info.val))
            coarse = rng.random((6, 8, 3)).astype(np.float32) * 255
            smooth = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
            pixels = np.asarray(smooth, np.float32) + rng.normal(0, 6, (height, width, 3))
            regions = rng.integers(1, 151, size=(6, 8)).astype(np.uint8)
            label = Image.fromarray(regions).resize((width, height), Image.NEAREST)
            stem = f"ADE_{Path(split.images).name[:5]}_{index + 1:08d}"
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(tree / split.images / f"{stem}.jpg", quality=90)
            label.save(tree / split.labels / f"{stem}.png")
    return info


def bench_data(
    dataset: str | None, root: Path, *, crop: int | None, num_images: int, synthetic: bool
) -> PipelineResult:
    """`segvit bench data`: time `dataset`'s training split under `root`, or (`synthetic`)
    ADE20K-sized JPEGs made in a temporary folder."""
    if num_images < 1:
        raise SegvitError(f"--num-images must be at least 1, got {num_images}")
    with tempfile.TemporaryDirectory(prefix="segvit-bench-") as scratch:
        if synthetic:
            ade = DATASETS["ade20k"].name
            if dataset is not None and load_dataset(dataset).name != ade:
                raise SegvitError(f"--synthetic makes {ade}-sized images; use --dataset {ade}")
            info, root = make_synthetic_ade(Path(scratch), count=num_images), Path(scratch)
        else:
            info = load_dataset(dataset or "demo")
            if not info.root(root).is_dir():
                raise SegvitError(
                    f"no {info.name} data at {info.root(root)}; {info.how_to_get()} "
                    "or pass --synthetic"
                )
        return bench_pipeline(info, root, crop=crop, num_images=num_images)
