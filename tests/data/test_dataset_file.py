"""A dataset of one's own in one YAML file: what it says, what it defaults, what it refuses."""

import numpy as np
import pytest
from PIL import Image

from segvit.data.catalog import load_dataset
from segvit.data.dataset_file import read_dataset_file
from segvit.data.datasets import SegDataset, list_pairs, read_label
from segvit.data.info import DatasetSpec
from segvit.errors import SegvitError


def _tree(root, n=2, size=(20, 16), top=2):
    """images/{train,val} and labels/{train,val} with n pairs each, ids 0..top."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, (i * 40, 9, 9)).save(root / "images" / split / f"s{i}.jpg")
            ids = np.arange(size[0] * size[1]).reshape(size[::-1]) % (top + 1)
            Image.fromarray(ids.astype(np.uint8)).save(root / "labels" / split / f"s{i}.png")


GOOD = """\
name: shapes
classes: [sky, tree, road]
splits:
  train: {images: images/train, labels: labels/train, count: 2}
  val: {images: images/val, labels: labels/val}
crop: 96
"""


def _write(root, text):
    path = root / "dataset.yaml"
    path.write_text(text)
    return path


def test_a_short_file_is_a_whole_spec_with_the_crop_defaults(tmp_path):
    _tree(tmp_path)
    spec = read_dataset_file(_write(tmp_path, GOOD))
    assert spec.name == "shapes" and spec.classes == ("sky", "tree", "road")
    assert spec.num_classes == 3 and spec.source == str(tmp_path / "dataset.yaml")
    # Derived from the crop as the built-in sets are: base scale (4 x crop, crop), stride 2/3.
    assert spec.base_scale_for(96) == (384, 96) and spec.stride_for(96) == 64
    assert spec.crop_for(large=True) == 96 and spec.paper_schedule is None
    assert spec.root("ignored/data/root") == tmp_path  # folders are relative to the file
    assert [p[0].name for p in list_pairs(spec, spec.root("x"), "train")] == ["s0.jpg", "s1.jpg"]
    assert spec.colours.shape == (3, 3) and len({tuple(c) for c in spec.colours}) == 3
    # A checkpoint records the spec as JSON; it reads back equal, class names included.
    assert DatasetSpec.from_record(spec.to_record()) == spec
    assert load_dataset(str(tmp_path / "dataset.yaml")) == spec


def test_classes_from_a_text_file_and_an_explicit_ignore_id(tmp_path):
    _tree(tmp_path, top=2)
    (tmp_path / "names.txt").write_text("sky\n\ntree\nroad\n")
    text = GOOD.replace("classes: [sky, tree, road]", "classes: names.txt\nignore_index: 99")
    spec = read_dataset_file(_write(tmp_path, text))
    assert spec.classes == ("sky", "tree", "road")
    label = tmp_path / "odd.png"
    Image.fromarray(np.array([[0, 1, 2, 99]], np.uint8)).save(label)
    assert read_label(label, spec).tolist() == [[0, 1, 2, 255]]  # 99 is not scored
    Image.fromarray(np.array([[0, 3]], np.uint8)).save(label)
    with pytest.raises(SegvitError, match=r"odd.png: label ids 3 are outside 0..2 \(99 = ignore\)"):
        read_label(label, spec)


def test_reduce_zero_label_as_mmseg_has_it(tmp_path):
    _tree(tmp_path, top=3)
    spec = read_dataset_file(_write(tmp_path, GOOD + "reduce_zero_label: true\n"))
    label = tmp_path / "z.png"
    Image.fromarray(np.array([[0, 1, 3, 255]], np.uint8)).save(label)
    assert read_label(label, spec).tolist() == [[255, 0, 2, 255]]
    pair = SegDataset(spec, tmp_path, "val")[0]
    assert set(np.unique(pair["label"]).tolist()) <= {0, 1, 2, 255}


@pytest.mark.parametrize(
    "change, message",
    [
        (("crop: 96", "crop: 96\ncolour: red"), r"dataset.yaml: colour: unknown key"),
        (("crop: 96", "crop: big"), r"dataset.yaml: crop: expected int, got 'big'"),
        (("crop: 96", "crop: 8"), r"dataset.yaml: crop: 8: expected at least 16"),
        (("images/train,", "images/nowhere,"), r"splits.train.images: .*images/nowhere is not a"),
        (("  val: {images: images/val, labels: labels/val}\n", ""), r"splits.val: missing"),
        (("val:", "test:"), r"splits.test: unknown split"),
        (("[sky, tree, road]", "[sky, sky, road]"), r"classes: 'sky' is named twice"),
        (("[sky, tree, road]", "names.txt"), r"classes: .*names.txt is not a file"),
        (("crop: 96", "crop: 96\nignore_index: 1"), r"ignore_index: 1 is a class id"),
        (("crop: 96", "crop: 96\npalette: [[0, 0, 0]]"), r"palette: 1 colours for 3 classes"),
        (("crop: 96", "crop: 96\nstride: 200"), r"stride: 200: expected 1 to the crop"),
        (("name: shapes", "name: my/set"), r"name: 'my/set': expected letters"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path, change, message):
    _tree(tmp_path)
    text = GOOD.replace(*change)
    with pytest.raises(SegvitError, match=message) as caught:
        read_dataset_file(_write(tmp_path, text))
    assert str(tmp_path / "dataset.yaml") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_data_behind_a_good_file_names_the_image(tmp_path):
    _tree(tmp_path, top=5)  # ids up to 5, but three classes
    spec = read_dataset_file(_write(tmp_path, GOOD))
    with pytest.raises(SegvitError, match=r"labels/train/s0.png: label ids 3, 4, 5 are outside"):
        SegDataset(spec, tmp_path, "train")[0]
    (tmp_path / "labels" / "val" / "s1.png").unlink()
    with pytest.raises(SegvitError, match=r"image .*images/val/s1.jpg has no label"):
        SegDataset(spec, tmp_path, "val")


def test_missing_file_and_folder_and_bad_yaml_are_one_line(tmp_path):
    with pytest.raises(SegvitError, match="no such dataset file"):
        load_dataset(str(tmp_path / "none.yaml"))
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SegvitError, match="bad.yaml: not valid YAML"):
        load_dataset(str(tmp_path / "bad.yaml"))
    with pytest.raises(SegvitError, match="unknown dataset 'cityscapes'.*or a dataset file"):
        load_dataset("cityscapes")
