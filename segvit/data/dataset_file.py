"""A dataset of your own, described in one small YAML file and read into a `DatasetSpec`.

    name: mydata
    classes: classes.txt          # one name a line, or a list: [background, cat, dog]
    splits:
      train: {images: images/train, labels: labels/train}
      val: {images: images/val, labels: labels/val, count: 40}
    crop: 512                     # base scale (4 x crop, crop) and stride 2/3 x crop follow

Folders and files are relative to the dataset file. The optional keys are listed in
`DatasetFile`; `segvit prepare folder` writes such a file for a folder of images and masks.
Every check names the file and the key: an unknown key, a wrong type, a missing folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from segvit.data.info import IGNORE_INDEX, DatasetSpec, Split, dataset_crop_problem
from segvit.errors import SegvitError
from segvit.fileio import write_text
from segvit.schema import from_mapping, read_yaml

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # it names run folders and result files


@dataclass(frozen=True)
class SplitFile:
    images: str  # folder of images, relative to the dataset file
    labels: str  # folder of label PNGs (class ids), relative to the dataset file
    listing: str | None = None  # a text file of image stems, one a line (default: all images)
    count: int | None = None  # images the split must hold, checked by `segvit datasets`


@dataclass(frozen=True)
class DatasetFile:
    name: str
    classes: list[str] | str  # the names in id order, or a text file of them (one a line)
    splits: dict[str, SplitFile]  # train and val
    palette: list[list[int]] | None = None  # an RGB colour per class; default: generated
    label_suffix: str = ".png"  # the label of STEM.jpg is STEM + label_suffix
    reduce_zero_label: bool = False  # id 0 is "unlabelled": ignored, the rest shift down by 1
    ignore_index: int = IGNORE_INDEX  # the id of pixels that are not scored
    crop: int = 512  # training crop and sliding window
    base_scale: list[int] | None = None  # [long, short]; default [4 x crop, crop]
    stride: int | None = None  # sliding-window stride; default 2/3 of the crop


def read_dataset_file(path: Path) -> DatasetSpec:
    """The spec a dataset file describes, every key and folder checked (one-line errors)."""
    path = Path(path).absolute()
    data = read_yaml(path, "dataset file")
    described: DatasetFile = from_mapping(DatasetFile, data, source=str(path))
    return to_spec(described, path)


def to_spec(
    d: DatasetFile,
    path: Path,
    *,
    check_paths: bool = True,
    blame: Callable[[str], str] | None = None,
) -> DatasetSpec:
    """The spec `d` describes as the file `path`: the one set of checks a user's dataset goes
    through, whether read from a file or built by `prepare folder` (which checks its folders
    itself and writes the split lists after, hence `check_paths=False`). `blame(key)` names
    what an error blames (default: the file and the key)."""

    def fail(key: str, message: str) -> SegvitError:
        return SegvitError(f"{blame(key) if blame else f'{path}: {key}'}: {message}")

    if not NAME.match(d.name):
        raise fail("name", f"{d.name!r}: expected letters, digits, '.', '_' or '-'")
    classes = _classes(d.classes, path, fail)
    unknown = sorted(set(d.splits) - {"train", "val"})
    if unknown:
        raise fail(f"splits.{unknown[0]}", "unknown split (expected train and val)")
    for name in ("train", "val"):
        if name not in d.splits:
            raise fail(f"splits.{name}", "missing")
    if not 0 <= d.ignore_index <= 255:
        raise fail("ignore_index", f"{d.ignore_index}: expected 0 to 255")
    top = len(classes) if d.reduce_zero_label else len(classes) - 1  # the largest file id
    if d.ignore_index <= top and not (d.reduce_zero_label and d.ignore_index == 0):
        raise fail("ignore_index", f"{d.ignore_index} is a class id (classes use 0..{top})")
    if dataset_crop_problem(d.crop):
        raise fail("crop", f"{d.crop}: {dataset_crop_problem(d.crop)}")
    base_scale = None
    if d.base_scale is not None:
        if len(d.base_scale) != 2 or min(d.base_scale) <= 0:
            raise fail("base_scale", f"{d.base_scale}: expected [long, short], both > 0")
        base_scale = (d.base_scale[0], d.base_scale[1])
    if d.stride is not None and not 0 < d.stride <= d.crop:
        raise fail("stride", f"{d.stride}: expected 1 to the crop ({d.crop})")
    palette = None
    if d.palette is not None:
        if len(d.palette) != len(classes):
            raise fail("palette", f"{len(d.palette)} colours for {len(classes)} classes")
        for i, colour in enumerate(d.palette):
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise fail(f"palette[{i}]", f"{colour}: expected [R, G, B] in 0..255")
        palette = tuple((c[0], c[1], c[2]) for c in d.palette)
    if not d.label_suffix.lower().endswith(".png"):
        raise fail("label_suffix", f"{d.label_suffix!r}: labels are PNG files (end in .png)")
    train, val = (
        _split(n, d.splits[n], d.label_suffix, path, fail, check_paths) for n in ("train", "val")
    )
    return DatasetSpec(
        name=d.name, classes=classes, train=train, val=val, crop=d.crop,
        base_scale=base_scale, reduce_zero_label=d.reduce_zero_label,
        ignore_index=d.ignore_index, palette=palette,
        strides={} if d.stride is None else {d.crop: d.stride}, folder=".", source=str(path),
    )  # fmt: skip


def read_class_names(listing: Path) -> list[str]:
    """The class names of a text file, one a line (blank lines skipped); it must be UTF-8."""
    try:
        text = Path(listing).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SegvitError(
            f"{listing}: not UTF-8 text (byte {err.start}); save the class names as UTF-8"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _classes(value: list[str] | str, path: Path, fail) -> tuple[str, ...]:
    if isinstance(value, str):
        listing = path.parent / value
        if not listing.is_file():
            raise fail("classes", f"{listing} is not a file (expected one class name a line)")
        names = read_class_names(listing)
    else:
        names = [str(name).strip() for name in value]
    if not names:
        raise fail("classes", "no class names")
    if len(names) > 255:
        raise fail("classes", f"{len(names)} classes; at most 255 fit 8-bit labels")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise fail("classes", f"{name!r} is named twice")
        seen.add(name)
    return tuple(names)


def _split(name: str, s: SplitFile, suffix: str, path: Path, fail, check_paths: bool) -> Split:
    where = f"splits.{name}."
    for key in ("images", "labels") if check_paths else ():
        folder = path.parent / getattr(s, key)
        if not folder.is_dir():
            raise fail(f"{where}{key}", f"{folder} is not a folder")
    if check_paths and s.listing is not None and not (path.parent / s.listing).is_file():
        raise fail(f"{where}listing", f"{path.parent / s.listing} is not a file")
    if s.count is not None and s.count < 1:
        raise fail(f"{where}count", f"{s.count}: expected at least 1")
    return Split(s.images, s.labels, s.listing, suffix, s.count)


def write_dataset_file(path: Path, spec: DatasetSpec) -> None:
    """Write `spec` (its folders relative to `path`'s folder) as a dataset file, atomically.
    A spec holding what a dataset file has no key for (a second crop's stride, a paper
    schedule...) is refused rather than written without it."""
    _check_writable(spec)
    content: dict[str, Any] = {"name": spec.name, "classes": list(spec.classes)}
    content["splits"] = {
        name: {"images": s.images, "labels": s.labels}
        | ({"listing": s.listing} if s.listing else {})
        | ({"count": s.count} if s.count is not None else {})
        for name, s in (("train", spec.train), ("val", spec.val))
    }
    content["label_suffix"] = spec.train.label_suffix
    content["reduce_zero_label"] = spec.reduce_zero_label
    content["ignore_index"] = spec.ignore_index
    content["crop"] = spec.crop
    if spec.base_scale is not None:
        content["base_scale"] = list(spec.base_scale)
    if spec.crop in spec.strides:
        content["stride"] = spec.strides[spec.crop]
    if spec.palette is not None:
        content["palette"] = [list(c) for c in spec.palette]
    text = yaml.safe_dump(content, sort_keys=False, default_flow_style=None, width=100)
    write_text(path, text)


def _check_writable(spec: DatasetSpec) -> None:
    defaults = {f.name: f for f in fields(DatasetSpec)}
    for name in ("crop_large", "base_scales", "test_min_size", "background", "paper_schedule"):
        f = defaults[name]
        default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        if getattr(spec, name) != default:
            raise SegvitError(f"{spec.name} cannot be written as a dataset file: it has no key "
                              f"for its {name}")  # fmt: skip
    if set(spec.strides) - {spec.crop}:
        raise SegvitError(
            f"{spec.name} cannot be written as a dataset file: it holds a stride for crops "
            f"{sorted(spec.strides)}, a file only at its crop"
        )
    if spec.train.label_suffix != spec.val.label_suffix:
        raise SegvitError(f"{spec.name} cannot be written as a dataset file: its splits' "
                          "label suffixes differ")  # fmt: skip
