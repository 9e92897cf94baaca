"""What a dataset is, as one value: `DatasetSpec`. The paper's sets are built in; any other set
is a small YAML file (segvit.data.dataset_file) read into the same value.

A spec holds every fact the toolkit needs about a dataset: its classes (and colours), where
each split's images and labels are, the label convention, the crop, base scale and stride
the models use on it, the paper's training schedule where the paper has one, and how
`segvit prepare` builds it. The built-in sets are in segvit.data.catalog, where commands
resolve `--dataset NAME|FILE` once (`load_dataset`) and pass the spec down; nothing below
asks by name again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from segvit.data.archives import Source
from segvit.errors import SegvitError

IGNORE_INDEX = 255  # the training id of pixels no loss or metric counts
MAX_CROP = 4096  # the largest crop accepted anywhere: 8x the paper's largest (640) and
# far past what fits a GPU; a typo's crop of 10^9 is refused before any tensor is made


def crop_problem(crop: int, patch: int = 16, *, pads: bool = False) -> str | None:
    """What is wrong with a crop (None when nothing): a positive multiple of the patch size or,
    for a backbone that pads its input to the patch, at least one patch; at most MAX_CROP
    either way. The one crop rule: models check their crop with their backbone's patch
    (segvit.modeling.variants.crop_problem). A dataset's own crop (dataset_crop_problem) is
    checked before any model is chosen."""
    if pads and crop < patch:
        return f"expected at least {patch} (the patch size)"
    if not pads and (crop <= 0 or crop % patch):
        return f"expected a positive multiple of {patch} (the patch size)"
    if crop > MAX_CROP:
        return f"expected at most {MAX_CROP}"
    return None


def dataset_crop_problem(crop: int) -> str | None:
    """What is wrong with a dataset's own crop: one that some backbone can take (at least 16
    pixels, at most MAX_CROP). Whether the chosen model takes it (the paper's ViTs want a
    multiple of 16, patch-14 families pad any crop) is checked when the model is chosen."""
    return crop_problem(crop, 16, pads=True)


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
class Download:
    """A file `segvit prepare` may download: where from, its checksum and its size."""

    url: str
    filename: str
    sha1: str | None  # None where no published checksum is known
    gb: float | None  # its size, for the disk plan and messages; None where not published
    about: str = ""  # what it is, for messages where no size is known

    @property
    def size(self) -> str:
        """For messages: "about 0.92 GB", or what it is."""
        return f"about {self.gb} GB" if self.gb is not None else self.about


@dataclass(frozen=True)
class Inputs:
    """The archives `segvit prepare` found (or downloaded) for one set, handed to its builder."""

    main: Source  # the images (and for ADE20K / COCO-Stuff the labels too)
    others: dict[str, Path] = field(default_factory=dict)  # the other archives by role
    # (PASCAL-Context's "context": the Detail JSON or the .mat archive of its labels)
    in_place: bool = False  # `main` is the final tree itself: read from it, copy nothing


@dataclass(frozen=True)
class Archive:
    """One file `segvit prepare` starts from: an official archive, or its extracted folder."""

    names: tuple[str, ...]  # what it may be called in a searched folder; the first found wins
    download: Download  # where it is fetched from when no searched folder has it
    holds: str | None = None  # a searched folder holding this path is the archive, extracted
    suffixes: tuple[str, ...] = ()  # a --src file of such a suffix (or one of `names`) is it


# (spec, the inputs found, the scratch folder to build in, progress) -> (tree, route taken)
Builder = Callable[["DatasetSpec", "Inputs", Path, bool], tuple[Path, str]]
# (spec, data root) -> the tree, written by segvit itself
Generator = Callable[["DatasetSpec", Path], Path]


@dataclass(frozen=True)
class Preparation:
    """How `segvit prepare NAME` makes a built-in set's tree: from its official archives (found
    under the data root or --src, else downloaded) through `build`, or, for a set without
    archives, written by `generate`.

    A spec read back from a record (`DatasetSpec.from_record`) keeps these facts but not the
    code (`build`, `generate`): it names the command, it does not run it.
    """

    name: str  # `segvit prepare NAME`; two specs can share one tree (PASCAL-Context 60 / 59)
    archives: dict[str, Archive] = field(default_factory=dict)  # by role; "main" first
    tree_gb: float = 0.0  # the prepared tree's size (about its archives': JPEG and PNG do not
    # shrink in a zip or tar)
    in_place: bool = False  # the main archive may lie extracted where the tree goes: the
    # build adds what is missing (the labels) to it instead of copying it
    build: Builder | None = field(default=None, compare=False, repr=False)
    generate: Generator | None = field(default=None, compare=False, repr=False)

    @property
    def generated(self) -> bool:
        """segvit writes the set itself (the demo set): no archives, any counts."""
        return not self.archives

    @property
    def archives_gb(self) -> float:
        """What the downloads take on disk (sizes not published count 0)."""
        return sum(a.download.gb or 0.0 for a in self.archives.values())

    def describe_downloads(self) -> str:
        """What `segvit prepare NAME` downloads, for a plan."""
        items = [f"{a.download.filename}, {a.download.size}" for a in self.archives.values()]
        return "; ".join(items) or "generated by segvit"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preparation:
        """The facts of a preparation read back from JSON (without its code)."""
        archives = {
            role: Archive(
                names=tuple(a["names"]),
                download=Download(**a["download"]),
                holds=a.get("holds"),
                suffixes=tuple(a.get("suffixes", ())),
            )
            for role, a in data.get("archives", {}).items()
        }
        return cls(data["name"], archives, data.get("tree_gb", 0.0), data.get("in_place", False))


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
    preparation: Preparation | None = None  # how `segvit prepare` builds it (built-in sets)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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

    @property
    def prepare(self) -> str | None:
        """The NAME of `segvit prepare NAME` that builds it; None for a set from a file."""
        return self.preparation.name if self.preparation else None

    @property
    def generated(self) -> bool:
        """Written by segvit itself (the demo set), at whatever counts were asked."""
        return self.preparation is not None and self.preparation.generated

    @property
    def disk_gb(self) -> tuple[float, float]:
        """(archives to download, prepared tree) in GB, for a plan."""
        prep = self.preparation
        return (prep.archives_gb, prep.tree_gb) if prep else (0.0, 0.0)

    def how_to_get(self, data_root: Path | str | None = None) -> str:
        """What to do when the data is missing, for an error message."""
        if self.prepare:
            where = f" --root {data_root}" if data_root is not None else ""
            return f"run `segvit prepare {self.prepare}{where}`"
        if self.source and not Path(self.source).is_file():  # a checkpoint's record of it
            return (f"its dataset file {self.source} is gone (moved?); pass --dataset with "
                    "the dataset file where it is now")  # fmt: skip
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
        """The spec as JSON, for a checkpoint's metadata (`from_record` reads it back); of
        its preparation the facts, not the code."""
        prep = self.preparation and replace(self.preparation, build=None, generate=None)
        return json.dumps(asdict(replace(self, preparation=prep)), sort_keys=True)

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
        if isinstance(data.get("prepare"), str):  # records before the Preparation record
            data["preparation"] = {"name": data["prepare"]}
        if data.get("preparation"):
            data["preparation"] = Preparation.from_dict(data["preparation"])
        if data.get("base_scale") is not None:
            data["base_scale"] = tuple(data["base_scale"])
        if data.get("palette") is not None:
            data["palette"] = tuple(tuple(c) for c in data["palette"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
