"""What a dataset is, as one value: `DatasetSpec`. The paper's sets are built in; any other set
is a small YAML file (segvit.data.dataset_file) read into the same value.

A spec holds every fact the toolkit needs about a dataset: its classes (and colours), where
each split's images and labels are, the label convention, the crop, base scale and stride
the models use on it, the paper's training schedule where the paper has one, and how
`segvit prepare` builds it. Commands resolve `--dataset NAME|FILE` once (`load_dataset`) and
pass the spec down; nothing below asks by name again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from segvit.errors import SegvitError

# References: SegViT release configs (mmsegmentation 0.24) for crops, base scales, slide
# strides and the per-dataset schedules (iterations, weight decay, poly power); mmsegmentation's
# dataset classes for layouts, splits and reduce_zero_label.

IGNORE_INDEX = 255  # the training id of pixels no loss or metric counts


@dataclass(frozen=True)
class Split:
    """Where one split's (image, label) pairs are, relative to the dataset's folder."""

    images: str  # folder of images (.jpg, .jpeg, .png)
    labels: str  # folder of label PNGs (one channel of class ids)
    listing: str | None = None  # a text file of stems, one a line; None: every image in `images`
    label_suffix: str = ".png"  # an image STEM.jpg has the label STEM + label_suffix
    count: int | None = None  # images it must hold (verified by `segvit prepare`); None: any


@dataclass(frozen=True)
class Schedule:
    """The paper's training length and regularisation on one dataset."""

    iters: int
    weight_decay: float
    power: float  # poly decay power


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]  # the model's output classes, in training-id order
    train: Split
    val: Split
    crop: int  # training crop and sliding window for ViT-B models
    crop_large: int | None = None  # the same for ViT-L models (ADE20K: 640); None: `crop`
    base_scale: tuple[int, int] | None = None  # (long, short) resize target before scaling
    # and testing; None: (4 x crop, crop) as the paper's sets have it
    reduce_zero_label: bool = False  # file id 0 is ignored and the rest shift down by one
    ignore_index: int = IGNORE_INDEX  # the file id of pixels that are not scored
    palette: tuple[tuple[int, int, int], ...] | None = None  # RGB per class; None: generated
    # The paper's sliding-window stride and base scale for each crop it uses; other crops get
    # 2/3 of the crop and `base_scale` (see stride_for / base_scale_for).
    strides: dict[int, int] = field(default_factory=dict)
    base_scales: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The release's test-time Resize(min_size): every test scale's short side is at least this
    # (segvit.inference.InferenceSettings.min_size); None where its configs set none.
    test_min_size: int | None = None
    background: int | None = None  # a class also left out in a second score (PASCAL-Context:
    # mIoU over the 59 classes without background, as the paper reports it)
    paper_schedule: Schedule | None = None  # what the paper's recipe trains on it
    folder: str = "."  # the dataset's folder: under the data root for a built-in set, relative
    # to the file's folder for one read from a file
    source: str | None = None  # the dataset file it was read from (absolute); None: built in
    prepare: str | None = None  # `segvit prepare NAME` builds it (built-in sets)
    disk_gb: tuple[float, float] = (0.0, 0.0)  # archives to download, prepared tree (the plan;
    # a prepared tree is about its archive's size: JPEG and PNG do not shrink in a zip/tar)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes

    def split(self, split: str) -> Split:
        if split not in ("train", "val"):
            raise SegvitError(f"unknown split {split!r}; expected 'train' or 'val'")
        return self.train if split == "train" else self.val

    def crop_for(self, large: bool) -> int:
        """The crop for a ViT-B (False) or ViT-L (True) model."""
        return (self.crop_large or self.crop) if large else self.crop

    def stride_for(self, crop: int) -> int:
        """Sliding-window stride at `crop`: the paper's where it has one, else 2/3 of it."""
        return self.strides.get(crop, max(1, crop * 2 // 3))

    def base_scale_for(self, crop: int) -> tuple[int, int]:
        return self.base_scales.get(crop, self.base_scale or (4 * self.crop, self.crop))

    def at_crop(self, crop: int) -> DatasetSpec:
        """The set as a run at another `crop` sees it (the smoke preset's small crop): every
        scale shrunk or grown in proportion, so a crop still covers the same share of an
        image (a 128 crop of an image resized for 512 would see a corner of it), the
        sliding-window stride 2/3 of the crop. The same set where `crop` is its own."""
        if crop == self.crop and self.crop_large in (None, crop):
            return self
        ratio = crop / self.crop
        long, short = self.base_scale_for(self.crop)
        return replace(
            self,
            crop=crop,
            crop_large=None,
            base_scale=(round(long * ratio), round(short * ratio)),
            strides={},
            base_scales={},
            test_min_size=None if self.test_min_size is None else round(self.test_min_size * ratio),
        )

    def root(self, data_root: Path | str) -> Path:
        """The folder holding the dataset: under `data_root` for a built-in set, beside its
        file for one read from a file (the data root does not apply)."""
        base = Path(self.source).parent if self.source else Path(data_root)
        return base / self.folder

    def how_to_get(self, data_root: Path | str | None = None) -> str:
        """What to do when the data is missing, for an error message."""
        if self.prepare:
            where = f" --root {data_root}" if data_root is not None else ""
            return f"run `segvit prepare {self.prepare}{where}`"
        if self.source:
            return f"check the folders named in {self.source}"
        return "prepare it first"

    @property
    def colours(self) -> Any:
        """(K, 3) uint8 RGB colour of each training id, for overlays."""
        import numpy as np

        if self.palette is not None:
            return np.array(self.palette, np.uint8)
        from segvit.data.classes import bit_palette

        # The colour map's first entry is black: it goes to a background class 0, and is
        # skipped where class 0 is a real class, so it stays visible.
        skip = 0 if self.background == 0 else 1
        return bit_palette(self.num_classes + skip)[skip:]

    def to_record(self) -> str:
        """The spec as JSON, for a checkpoint's metadata (`from_record` reads it back)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_record(cls, text: str) -> DatasetSpec:
        data = json.loads(text)
        for name in ("train", "val"):
            data[name] = Split(**data[name])
        if data.get("paper_schedule"):
            data["paper_schedule"] = Schedule(**data["paper_schedule"])
        data["classes"] = tuple(data["classes"])
        data["strides"] = {int(k): int(v) for k, v in data.get("strides", {}).items()}
        data["base_scales"] = {int(k): tuple(v) for k, v in data.get("base_scales", {}).items()}
        for key in ("base_scale", "disk_gb"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        if data.get("palette") is not None:
            data["palette"] = tuple(tuple(c) for c in data["palette"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _ade_layout(count_train: int, count_val: int) -> dict[str, Split]:
    """mmsegmentation's ADE20K layout: images/ and annotations/ with one folder per split."""
    return {
        "train": Split("images/training", "annotations/training", count=count_train),
        "val": Split("images/validation", "annotations/validation", count=count_val),
    }


def _pascal_context(name: str, classes: tuple[str, ...], reduce_zero_label: bool) -> DatasetSpec:
    def split(phase: str, count: int) -> Split:
        listing = f"ImageSets/SegmentationContext/{phase}.txt"
        return Split("JPEGImages", "SegmentationClassContext", listing, count=count)

    return DatasetSpec(
        name=name, classes=classes, train=split("train", 4996), val=split("val", 5104),
        crop=480, base_scale=(520, 520), reduce_zero_label=reduce_zero_label,
        strides={480: 320}, test_min_size=480, background=0 if not reduce_zero_label else None,
        paper_schedule=Schedule(80_000, 0.03, 1.0), folder="VOCdevkit/VOC2010",
        prepare="pascal-context", disk_gb=(1.3, 1.4),
    )  # fmt: skip


def _builtins() -> dict[str, DatasetSpec]:
    from segvit.data import classes as names

    return {
        "ade20k": DatasetSpec(
            name="ade20k", classes=names.ADE20K, **_ade_layout(20210, 2000), crop=512,
            crop_large=640, base_scale=(2048, 512), reduce_zero_label=True,
            strides={512: 341, 640: 608}, base_scales={640: (2048, 640)},
            paper_schedule=Schedule(160_000, 0.01, 1.0), folder="ade/ADEChallengeData2016",
            prepare="ade20k", disk_gb=(0.92, 1.0),
        ),
        "coco-stuff-10k": DatasetSpec(
            name="coco-stuff-10k", classes=names.COCO_STUFF,
            train=Split("images/train2014", "annotations/train2014",
                        label_suffix="_labelTrainIds.png", count=9000),
            val=Split("images/test2014", "annotations/test2014",
                      label_suffix="_labelTrainIds.png", count=1000),
            crop=512, base_scale=(2048, 512), reduce_zero_label=True, strides={512: 341},
            test_min_size=512, paper_schedule=Schedule(80_000, 0.02, 2.0), folder="coco_stuff10k",
            prepare="coco-stuff-10k", disk_gb=(2.0, 2.0),
        ),
        "pascal-context": _pascal_context("pascal-context", names.PASCAL_CONTEXT, False),
        "pascal-context-59": _pascal_context(
            "pascal-context-59", names.PASCAL_CONTEXT[1:], True
        ),
        # The embedded demo set (segvit.data.demo): ADE20K's layout and label convention,
        # small images, so the very same code paths run on a CPU in minutes. Its paper
        # schedule is not the paper's: the paper recipe on the demo set, for tests.
        "demo": DatasetSpec(
            name="demo", classes=names.DEMO, **_ade_layout(400, 50), crop=128,
            base_scale=(512, 128), reduce_zero_label=True, strides={128: 85},
            palette=names.DEMO_PALETTE, paper_schedule=Schedule(1000, 0.01, 1.0),
            folder="demo", prepare="demo", disk_gb=(0.0, 0.01),
        ),
    }  # fmt: skip


DATASETS: dict[str, DatasetSpec] = _builtins()


def get_dataset(name: str) -> DatasetSpec:
    """The built-in DatasetSpec `name`, or a one-line error listing the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SegvitError(
            f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}, or a dataset "
            "file (.yaml)"
        ) from None


def load_dataset(name_or_file: str | Path) -> DatasetSpec:
    """`--dataset`'s value: a built-in name, or the path of a dataset file."""
    text = str(name_or_file)
    if text in DATASETS:
        return DATASETS[text]
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        from segvit.data.dataset_file import read_dataset_file

        return read_dataset_file(Path(text))
    return get_dataset(text)


def with_counts(spec: DatasetSpec, train: int | None, val: int | None) -> DatasetSpec:
    """`spec` expecting other image counts (the demo set's generator takes its own)."""
    return replace(spec, train=replace(spec.train, count=train), val=replace(spec.val, count=val))
