from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segvit.data import geometry, imageio
from segvit.data.catalog import DATASETS
from segvit.data.datasets import (
    SegDataset,
    check_pair,
    list_pairs,
    read_label,
    read_pair,
)
from segvit.errors import SegvitError

ADE = DATASETS["ade20k"]


def _write_ade(tree: Path, split: str, stem: str, image: Image.Image, label: np.ndarray):
    (tree / "images" / split).mkdir(parents=True, exist_ok=True)
    (tree / "annotations" / split).mkdir(parents=True, exist_ok=True)
    image.save(
        tree / "images" / split / f"{stem}.jpg"
        if image.mode in ("RGB", "L")
        else tree / "images" / split / f"{stem}.png"
    )
    Image.fromarray(label).save(tree / "annotations" / split / f"{stem}.png")


def _pair(tmp_path, image: Image.Image, label: np.ndarray, name="x"):
    image_path = tmp_path / f"{name}.png"
    image.save(image_path)
    label_path = tmp_path / f"{name}_label.png"
    Image.fromarray(label).save(label_path)
    return image_path, label_path


def test_dataset_roots_are_mmsegmentation_defaults():
    root = Path("data")
    assert ADE.root(root) == root / "ade/ADEChallengeData2016"
    assert DATASETS["coco-stuff-10k"].root(root) == root / "coco_stuff10k"
    assert DATASETS["pascal-context-59"].root(root) == root / "VOCdevkit/VOC2010"
    assert DATASETS["demo"].root(root) == root / "demo"


def test_list_pairs_names_the_unpaired_file(tmp_path):
    label = np.zeros((8, 8), np.uint8)
    _write_ade(tmp_path, "training", "a", Image.new("RGB", (8, 8)), label)
    _write_ade(tmp_path, "training", "b", Image.new("RGB", (8, 8)), label)
    (tmp_path / "images/training/.DS_Store").write_text("")  # hidden files are not data
    assert [p[0].name for p in list_pairs(ADE, tmp_path, "train")] == ["a.jpg", "b.jpg"]
    (tmp_path / "annotations/training/b.png").unlink()
    with pytest.raises(SegvitError, match=r"image .*b.jpg has no label .*b.png"):
        list_pairs(ADE, tmp_path, "train")
    (tmp_path / "images/training/b.jpg").unlink()
    Image.fromarray(label).save(tmp_path / "annotations/training/c.png")
    with pytest.raises(SegvitError, match=r"label .*c.png has no image"):
        list_pairs(ADE, tmp_path, "train")
    with pytest.raises(SegvitError, match="validation is missing; run `segvit prepare ade20k`"):
        list_pairs(ADE, tmp_path, "val")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_read_pair_brings_every_image_mode_to_rgb(tmp_path, mode):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    rgb = Image.fromarray(np.stack([grey] * 3, axis=2))
    if mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 257)
    elif mode == "P":  # indices into a grey palette
        image = Image.fromarray(grey, "P")
        image.putpalette([v for i in range(256) for v in (i, i, i)])
    else:
        image = rgb.convert(mode)
    if mode == "CMYK":
        path = tmp_path / "x.jpg"
        image.save(path)
        label_path = _pair(tmp_path, rgb, np.ones((6, 8), np.uint8))[1]
    else:
        path, label_path = _pair(tmp_path, image, np.ones((6, 8), np.uint8))
    pixels, label = read_pair(path, label_path, ADE)
    assert pixels.shape == (6, 8, 3) and pixels.dtype == np.uint8
    tolerance = 8 if mode == "CMYK" else 0  # CMYK goes through lossy JPEG
    assert np.abs(pixels[..., 0].astype(int) - grey).max() <= tolerance
    assert (label == 0).all()  # 1 -> 0 by reduce_zero_label


def test_exif_rotation_is_applied_when_the_label_fits_the_turned_image(tmp_path):
    stored = np.zeros((6, 10, 3), np.uint8)
    stored[0, 0] = 255  # a marker pixel at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "x.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=100)
    turned_label = _pair(tmp_path, Image.new("RGB", (6, 10)), np.ones((10, 6), np.uint8), "t")[1]
    pixels, _ = read_pair(path, turned_label, ADE)
    assert pixels.shape == (10, 6, 3) and pixels[0, -1].mean() > 200  # marker now top-right
    stored_label = _pair(tmp_path, Image.new("RGB", (10, 6)), np.ones((6, 10), np.uint8), "s")[1]
    pixels, _ = read_pair(path, stored_label, ADE)  # label drawn on the stored pixels
    assert pixels.shape == (6, 10, 3) and pixels[0, 0].mean() > 200
    check_pair(path, turned_label, ADE)
    check_pair(path, stored_label, ADE)


def test_labels_in_palette_and_16_bit_modes_keep_their_ids(tmp_path):
    ids = np.array([[0, 1, 2, 150], [255, 3, 4, 5]], np.uint8)
    palette_label = Image.fromarray(ids, "P")
    palette_label.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    palette_label.save(tmp_path / "p.png")
    Image.fromarray(ids.astype(np.uint16)).save(tmp_path / "w.png")
    Image.new("RGB", (4, 2)).save(tmp_path / "i.png")
    expected = np.array([[255, 0, 1, 149], [255, 2, 3, 4]])  # reduce_zero_label
    for name in ("p.png", "w.png"):
        _, label = read_pair(tmp_path / "i.png", tmp_path / name, ADE)
        assert label.dtype == np.uint8 and (label == expected).all()


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (np.full((4, 4), 151, np.uint8), r"ids 151 are outside 0..150 \(255 = ignore\)"),
        (np.zeros((4, 4, 3), np.uint8) + np.array([1, 2, 3], np.uint8), "mode RGB"),
        (np.zeros((4, 4, 4), np.uint8), "mode RGBA"),
        (np.zeros((5, 4), np.uint8), "is 4x4 but its label .* is 4x5"),
    ],
)
def test_bad_labels_are_one_error_naming_the_file(tmp_path, label, message):
    image_path, label_path = _pair(tmp_path, Image.new("RGB", (4, 4)), label)
    with pytest.raises(SegvitError, match=message):
        read_pair(image_path, label_path, ADE)
    with pytest.raises(SegvitError, match=message):
        check_pair(image_path, label_path, ADE)


def test_a_grey_label_saved_as_rgb_is_accepted(tmp_path):
    label = np.stack([np.full((4, 4), 7, np.uint8)] * 3, axis=2)
    image_path, label_path = _pair(tmp_path, Image.new("RGB", (4, 4)), label)
    assert (read_pair(image_path, label_path, ADE)[1] == 6).all()


def test_truncated_and_corrupt_images_are_one_error(tmp_path, build):
    label = Image.fromarray(np.ones((24, 32), np.uint8))
    label.save(tmp_path / "l.png")
    whole = build.jpeg_bytes(24, 32)
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    for name in ("cut.jpg", "junk.jpg"):
        with pytest.raises(SegvitError, match=f"{name}: not a readable image"):
            read_pair(tmp_path / name, tmp_path / "l.png", ADE)
        with pytest.raises(SegvitError, match=f"{name}: not a readable image"):
            check_pair(tmp_path / name, tmp_path / "l.png", ADE)
    (tmp_path / "whole.jpg").write_bytes(whole)
    (tmp_path / "l.png").write_bytes(b"\x89PNG cut")
    with pytest.raises(SegvitError, match="l.png: not a readable label"):
        read_pair(tmp_path / "whole.jpg", tmp_path / "l.png", ADE)


def test_images_and_labels_over_the_pixel_limit_are_refused(tmp_path, monkeypatch):
    image_path, label_path = _pair(tmp_path, Image.new("RGB", (8, 4)), np.ones((4, 8), np.uint8))
    monkeypatch.setattr(imageio, "MAX_PIXELS", 31)
    with pytest.raises(SegvitError, match=r"x.png: image of 8x4 = 32 pixels is over the limit"):
        read_pair(image_path, label_path, ADE)
    with pytest.raises(SegvitError, match=r"x.png: image of 8x4 = 32 pixels is over the limit"):
        check_pair(image_path, label_path, ADE)
    with pytest.raises(SegvitError, match=r"x_label.png: label of 8x4 = 32 pixels is over"):
        read_label(label_path, ADE)


def test_pascal_context_60_and_59_read_the_same_files(tmp_path):
    tree = tmp_path / "VOCdevkit/VOC2010"
    (tree / "JPEGImages").mkdir(parents=True)
    (tree / "SegmentationClassContext").mkdir()
    (tree / "ImageSets/SegmentationContext").mkdir(parents=True)
    Image.new("RGB", (3, 2)).save(tree / "JPEGImages/2008_000001.jpg")
    Image.fromarray(np.array([[0, 1, 59], [2, 0, 255]], np.uint8)).save(
        tree / "SegmentationClassContext/2008_000001.png"
    )
    (tree / "ImageSets/SegmentationContext/val.txt").write_text("2008_000001\n")
    sixty = SegDataset(DATASETS["pascal-context"], tmp_path, "val")[0]
    fifty_nine = SegDataset(DATASETS["pascal-context-59"], tmp_path, "val")[0]
    assert sixty["label"].tolist() == [[0, 1, 59], [2, 0, 255]]
    assert fifty_nine["label"].tolist() == [[255, 0, 58], [1, 255, 255]]  # background ignored
    (tree / "ImageSets/SegmentationContext/val.txt").write_text("2008_000002\n")
    with pytest.raises(SegvitError, match="2008_000002 .* is missing"):
        SegDataset(DATASETS["pascal-context"], tmp_path, "val")


def _small_tree(tmp_path, count=3):
    for index in range(count):
        rng = np.random.default_rng(index)
        pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
        label = rng.integers(0, 9, (40, 56)).astype(np.uint8)
        _write_ade(tmp_path / "demo", "training", f"s{index}", Image.fromarray(pixels), label)


def as_tensors(image, label):
    """A deterministic transform: the normalised image and the label as int64 tensors."""
    return geometry.normalize(image), torch.from_numpy(label.astype(np.int64))


def test_seg_dataset_applies_a_deterministic_transform(tmp_path):
    _small_tree(tmp_path)
    info = DATASETS["demo"]
    dataset = SegDataset(info, tmp_path, "train", as_tensors)
    sample = dataset[1]
    assert set(sample) == {"image", "label", "path"} and sample["path"].endswith("s1.jpg")
    image, label = read_pair(*dataset.pairs[1], info)
    assert torch.equal(sample["image"], geometry.normalize(image))
    assert sample["label"].dtype == torch.int64 and (sample["label"].numpy() == label).all()
    assert torch.equal(dataset[1]["image"], sample["image"])  # no randomness: the same twice
    with pytest.raises(IndexError):
        dataset[len(dataset)]  # one pass over the split; epochs are the sampler's business


def test_seg_dataset_without_a_transform_gives_the_decoded_arrays(tmp_path):
    _small_tree(tmp_path, count=1)
    sample = SegDataset(DATASETS["demo"], tmp_path, "train", None)[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (40, 56, 3)
    assert sample["label"].dtype == np.uint8 and sample["label"].shape == (40, 56)
    assert set(np.unique(sample["label"]).tolist()) == set(range(8)) | {255}  # training ids


def test_seg_dataset_errors_say_what_to_run(tmp_path):
    with pytest.raises(SegvitError, match="run `segvit prepare ade20k --root"):
        SegDataset(ADE, tmp_path, "train")
    with pytest.raises(SegvitError, match="run `segvit prepare pascal-context --root"):
        SegDataset(DATASETS["pascal-context-59"], tmp_path, "val")
    with pytest.raises(SegvitError, match="unknown split 'test'"):
        SegDataset(ADE, tmp_path, "test")
