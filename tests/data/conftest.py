"""Builders of tiny official-structure archives for the data tests.

Each builder writes a handful of small images in the exact folder structure, file types and
label encodings of the real release (ADE20K zip, COCO-Stuff-10K zip with MATLAB labels, VOC
2010 tar, the Detail API JSON with COCO run-length masks, PASCAL-Context's .mat tarball).
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segvit.data import catalog


def jpeg_bytes(height: int, width: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def labels(height: int, width: int, top: int, seed: int = 0) -> np.ndarray:
    """(H, W) uint8 ids in 0..top in four quadrants (several classes per crop)."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width), np.uint8)
    ids = rng.integers(0, top + 1, size=4)
    out[: height // 2, : width // 2], out[: height // 2, width // 2 :] = ids[0], ids[1]
    out[height // 2 :, : width // 2], out[height // 2 :, width // 2 :] = ids[2], ids[3]
    return out


# --- MATLAB 5 writer and COCO RLE encoder (the inverses of what segvit reads) -------------


def _element(mtype: int, data: bytes, order: str) -> bytes:
    padding = b"\0" * (-len(data) % 8)
    return struct.pack(order + "II", mtype, len(data)) + data + padding


def mat_bytes(
    variables: dict[str, np.ndarray],
    *,
    compress: bool = True,
    order: str = "<",
    storage: dict[str, str] | None = None,
) -> bytes:
    """A level-5 MAT-file holding `variables` (numeric 2-D arrays)."""
    classes = {"uint8": 9, "int16": 10, "uint16": 11, "int32": 12, "float64": 6}
    types = {"uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "float64": 9}
    text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, written by the segvit tests"
    header = text.ljust(116, b" ") + b"\0" * 8 + struct.pack(order + "H", 0x0100)
    header += b"IM" if order == "<" else b"MI"
    out = header
    for name, array in variables.items():
        stored = (storage or {}).get(name, array.dtype.name)
        flags = _element(6, struct.pack(order + "II", classes[array.dtype.name], 0), order)
        dims = _element(5, struct.pack(order + "ii", *array.shape), order)
        raw_name = name.encode()
        if len(raw_name) <= 4:  # small data element: size and type share one word
            name_el = struct.pack(order + "I", (len(raw_name) << 16) | 1) + raw_name.ljust(4, b"\0")
        else:
            name_el = _element(1, raw_name, order)
        data = array.astype(np.dtype(stored).newbyteorder(order)).tobytes(order="F")
        body = flags + dims + name_el + _element(types[stored], data, order)
        element = struct.pack(order + "II", 14, len(body)) + body
        if compress:
            packed = zlib.compress(element)
            out += struct.pack(order + "II", 15, len(packed)) + packed
        else:
            out += element
    return out


def rle_string(mask: np.ndarray) -> str:
    """COCO compressed RLE of a bool (H, W) mask: column-major runs, 0s first."""
    flat = mask.flatten(order="F").astype(np.int8)
    runs, current, count = [], 0, 0
    for value in flat:
        if value != current:
            runs.append(count)
            current, count = value, 0
        count += 1
    runs.append(count)
    chars = []
    for index, run in enumerate(runs):
        value = run - runs[index - 2] if index > 2 else run
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            chars.append(chr((chunk | (0x20 if more else 0)) + 48))
    return "".join(chars)


# --- Tiny official archives ----------------------------------------------------------------


def make_ade_zip(path: Path, n_train: int, n_val: int, *, size=(24, 32), extra=None) -> Path:
    """ADEChallengeData2016.zip: images/{training,validation}/*.jpg + annotations/*.png."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ADEChallengeData2016/objectInfo150.txt", "Idx\tRatio\tTrain\tVal\tName\n")
        for split, tag, count in (("training", "train", n_train), ("validation", "val", n_val)):
            for index in range(1, count + 1):
                stem = f"ADE_{tag}_{index:08d}"
                seed = index + (1000 if tag == "val" else 0)
                archive.writestr(
                    f"ADEChallengeData2016/images/{split}/{stem}.jpg", jpeg_bytes(*size, seed)
                )
                archive.writestr(
                    f"ADEChallengeData2016/annotations/{split}/{stem}.png",
                    png_bytes(labels(*size, 150, seed)),
                )
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def coco_names(n_train: int, n_test: int) -> tuple[list[str], list[str]]:
    train = [f"COCO_train2014_{index:012d}" for index in range(1, n_train + 1)]
    test = [f"COCO_train2014_{index:012d}" for index in range(500, 500 + n_test)]
    return train, test


def make_coco_zip(path: Path, n_train: int, n_test: int, *, size=(20, 28), ids=None) -> Path:
    """cocostuff-10k-v1.1.zip: images/*.jpg, annotations/*.mat ('S'), imageLists/*.txt."""
    train, test = coco_names(n_train, n_test)
    with zipfile.ZipFile(path, "w") as archive:
        for name in train + test:
            seed = int(name[-6:])
            archive.writestr(f"images/{name}.jpg", jpeg_bytes(*size, seed))
            array = ids if ids is not None else np.full(size, 13, np.uint16)
            archive.writestr(
                f"annotations/{name}.mat",
                mat_bytes({"S": array.astype(np.uint16)}, storage={"S": "uint8"}),
            )
        archive.writestr("imageLists/train.txt", "\n".join(train) + "\n")
        archive.writestr("imageLists/test.txt", "\n".join(test) + "\n")
        archive.writestr("imageLists/all.txt", "\n".join(train + test) + "\n")
    return path


def voc_stems(n_train: int, n_val: int) -> tuple[list[str], list[str]]:
    return (
        [f"2008_{index:06d}" for index in range(1, n_train + 1)],
        [f"2009_{index:06d}" for index in range(1, n_val + 1)],
    )


def make_voc_tar(path: Path, train: list[str], val: list[str], *, size=(20, 30)) -> Path:
    """VOCtrainval_03-May-2010.tar: VOCdevkit/VOC2010/JPEGImages + ImageSets/Main lists."""
    with tarfile.open(path, "w") as archive:
        for stem in train + val:
            _add(archive, f"VOCdevkit/VOC2010/JPEGImages/{stem}.jpg", jpeg_bytes(*size))
        for split, stems in (("train", train), ("val", val)):
            text = "".join(f"{s}\n" for s in stems).encode()
            _add(archive, f"VOCdevkit/VOC2010/ImageSets/Main/{split}.txt", text)
    return path


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def make_detail_json(path: Path, train: list[str], val: list[str], *, size=(20, 30)) -> Path:
    """trainval_merged.json: images with phases, RLE annotations with 459-class ids."""
    height, width = size
    images, annotations = [], []
    for phase, stems in (("train", train), ("val", val)):
        for stem in stems:
            image_id = int(stem[:4] + stem[5:])
            images.append(
                {
                    "image_id": image_id,
                    "file_name": f"{stem}.jpg",
                    "phase": phase,
                    "height": height,
                    "width": width,
                }
            )
            left = np.zeros(size, bool)
            left[:, : width // 2] = True
            top = np.zeros(size, bool)
            top[: height // 3] = True
            for category, mask in ((2, left), (458, top)):  # aeroplane, then wood on top
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category,
                        "iscrowd": 0,
                        "segmentation": {"size": [height, width], "counts": rle_string(mask)},
                    }
                )
    data = {
        "info": {},
        "images": images,
        "annos_segmentation": annotations,
        "categories": [],
        "parts": [],
        "annos_occlusion": [],
    }
    path.write_text(json.dumps(data))
    return path


def make_context_tgz(path: Path, stems: list[str], *, size=(20, 30)) -> Path:
    """PASCAL-Context trainval.tar.gz: trainval/<stem>.mat with 'LabelMap' (459 classes)."""
    label = np.full(size, 431, np.uint16)  # a class outside the 59: background
    label[:, : size[1] // 2] = 2  # aeroplane
    label[0, 0] = 458  # wood
    with tarfile.open(path, "w:gz") as archive:
        for stem in stems:
            _add(archive, f"trainval/{stem}.mat", mat_bytes({"LabelMap": label}))
    return path


@pytest.fixture
def small_counts(monkeypatch):
    """Shrink the official split counts so tiny archives pass verification."""

    def shrink(name: str, train: int, val: int) -> None:
        info = catalog.DATASETS[name]
        counts = {"train": replace(info.train, count=train), "val": replace(info.val, count=val)}
        monkeypatch.setitem(catalog.DATASETS, name, replace(info, **counts))

    return shrink


@pytest.fixture
def build():
    """The builders above, for test modules (conftest is not importable by name)."""
    import types

    return types.SimpleNamespace(
        jpeg_bytes=jpeg_bytes,
        png_bytes=png_bytes,
        labels=labels,
        mat_bytes=mat_bytes,
        rle_string=rle_string,
        make_ade_zip=make_ade_zip,
        make_coco_zip=make_coco_zip,
        coco_names=coco_names,
        voc_stems=voc_stems,
        make_voc_tar=make_voc_tar,
        make_detail_json=make_detail_json,
        make_context_tgz=make_context_tgz,
    )
