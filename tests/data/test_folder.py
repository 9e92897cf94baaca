"""`segvit prepare folder`: a folder of images and masks becomes a verified dataset file."""

import numpy as np
import pytest
from PIL import Image

from segvit.data.catalog import load_dataset
from segvit.data.folder import prepare_folder
from segvit.errors import SegvitError


def _folder(root, n=10, size=(24, 16), top=2, sub=""):
    images, masks = root / "img" / sub, root / "mask" / sub
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (i * 20, 0, 0)).save(images / f"p{i:02d}.jpg")
        ids = np.full(size[::-1], i % (top + 1), np.uint8)
        Image.fromarray(ids).save(masks / f"p{i:02d}.png")
    return root / "img", root / "mask"


def test_flat_folder_is_split_seeded_and_written_last(tmp_path):
    images, masks = _folder(tmp_path)
    (tmp_path / "classes.txt").write_text("sky\ntree\nroad\n")
    out = tmp_path / "mydata"
    path = prepare_folder(images, masks, out, classes=tmp_path / "classes.txt",
                          val_fraction=0.2, progress=False)  # fmt: skip
    assert path == out / "dataset.yaml"
    spec = load_dataset(str(path))
    assert spec.name == "mydata" and spec.classes == ("sky", "tree", "road")
    assert (spec.train.count, spec.val.count) == (8, 2)
    train = (out / "train.txt").read_text().split()
    val = (out / "val.txt").read_text().split()
    assert sorted(train + val) == [f"p{i:02d}" for i in range(10)] and not set(train) & set(val)
    # The same seed gives the same split; another seed another one.
    again = prepare_folder(images, masks, tmp_path / "again", classes=tmp_path / "classes.txt",
                           val_fraction=0.2, progress=False)  # fmt: skip
    assert (again.parent / "val.txt").read_text() == (out / "val.txt").read_text()
    other = prepare_folder(images, masks, tmp_path / "other", classes=tmp_path / "classes.txt",
                           val_fraction=0.2, seed=3, progress=False)  # fmt: skip
    assert (other.parent / "val.txt").read_text() != (out / "val.txt").read_text()


def test_split_folders_are_kept_and_classes_numbered_from_the_ids(tmp_path):
    _folder(tmp_path, n=3, top=4, sub="train")
    images, masks = _folder(tmp_path, n=2, top=4, sub="val")
    spec = load_dataset(str(prepare_folder(images, masks, tmp_path / "d", progress=False)))
    assert spec.classes == ("0", "1", "2")  # ids found: 0..2 in train (n=3), 0..1 in val
    assert (spec.train.count, spec.val.count) == (3, 2) and spec.train.listing is None


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda m, i: (m / "p03.png").unlink(), r"image .*p03.jpg has no label .*p03.png"),
        (lambda m, i: (i / "p04.jpg").unlink(), r"label .*p04.png has no image in"),
        (lambda m, i: Image.new("L", (5, 5)).save(m / "p05.png"), r"p05.jpg is 24x16 but its"),
        (lambda m, i: Image.fromarray(np.full((16, 24), 7, np.uint8)).save(m / "p06.png"),
         r"p06.png: label ids 7 are outside 0..2 \(255 = ignore\)"),
        (lambda m, i: (i / "p07.jpg").write_bytes(b"not a jpeg"), r"p07.jpg"),
    ],
)  # fmt: skip
def test_a_bad_pair_is_one_line_and_nothing_is_written(tmp_path, spoil, message):
    images, masks = _folder(tmp_path)
    (tmp_path / "classes.txt").write_text("sky\ntree\nroad\n")
    spoil(masks, images)
    with pytest.raises(SegvitError, match=message):
        prepare_folder(images, masks, tmp_path / "out", classes=tmp_path / "classes.txt",
                       progress=False)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_bad_options_name_the_option(tmp_path):
    images, masks = _folder(tmp_path, n=2)
    with pytest.raises(SegvitError, match="--images .*nowhere: not a folder"):
        prepare_folder(tmp_path / "nowhere", masks, tmp_path / "o", progress=False)
    with pytest.raises(SegvitError, match="--val-fraction 1.5: expected between 0 and 1"):
        prepare_folder(images, masks, tmp_path / "o", val_fraction=1.5, progress=False)
    with pytest.raises(SegvitError, match="--classes .*missing.txt: not a file"):
        prepare_folder(images, masks, tmp_path / "o", classes=tmp_path / "missing.txt",
                       progress=False)  # fmt: skip
