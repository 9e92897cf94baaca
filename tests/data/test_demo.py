import numpy as np
import pytest
from PIL import Image

from segvit.data import demo, transforms
from segvit.data.archives import MARKER
from segvit.data.catalog import DATASETS
from segvit.data.datasets import SegDataset, list_pairs
from segvit.errors import SegvitError

INFO = DATASETS["demo"]


def _files(tree):
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def test_demo_is_deterministic_from_its_seed(tmp_path):
    first = demo.make_demo(tmp_path / "a", seed=1, num_train=4, num_val=2)
    second = demo.make_demo(tmp_path / "b", seed=1, num_train=4, num_val=2)
    other = demo.make_demo(tmp_path / "c", seed=2, num_train=4, num_val=2)
    assert first == tmp_path / "a" / "demo"
    assert _files(first) == _files(second)
    assert _files(first).keys() == _files(other).keys() and _files(first) != _files(other)
    assert len(list_pairs(INFO, first, "train")) == 4
    assert len(list_pairs(INFO, first, "val")) == 2


def test_demo_has_the_ade20k_label_convention(tmp_path):
    tree = demo.make_demo(tmp_path, num_train=12, num_val=2)
    seen = set()
    for image_path, label_path in list_pairs(INFO, tree, "train"):
        image, label = Image.open(image_path), np.asarray(Image.open(label_path))
        assert image.mode == "RGB" and image_path.suffix == ".jpg"
        assert 160 <= image.width <= 256 and 160 <= image.height <= 256
        assert image.size == (label.shape[1], label.shape[0])
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(9)) and {0, 1} <= seen and len(seen) >= 6  # boundaries, bg, shapes


def test_demo_is_read_by_the_ade20k_reader(tmp_path):
    demo.make_demo(tmp_path, num_train=3, num_val=2)
    sample = SegDataset(INFO, tmp_path, "train")[0]  # decoded arrays; the engine augments
    image, label = transforms.TrainTransform(INFO, 128)(
        sample["image"], sample["label"], transforms.sample_rng(0, 0, 0)
    )
    assert image.shape == (3, 128, 128)
    assert set(label.unique().tolist()) <= set(range(8)) | {255}
    label = SegDataset(INFO, tmp_path, "val")[1]["label"]
    assert label.dtype == np.uint8 and (label == 255).any()  # unlabelled boundary band


def test_make_demo_is_idempotent_and_replaces_only_its_own_tree(tmp_path):
    tree = demo.make_demo(tmp_path, num_train=2, num_val=1)
    stamp = (tree / MARKER).stat().st_mtime_ns
    assert demo.make_demo(tmp_path, num_train=2, num_val=1) == tree
    assert (tree / MARKER).stat().st_mtime_ns == stamp  # kept, not rewritten
    demo.make_demo(tmp_path, num_train=3, num_val=1)  # other arguments: regenerated
    assert len(list_pairs(INFO, tree, "train")) == 3
    assert not list(tmp_path.glob(".segvit-tmp-*"))
    foreign = tmp_path / "other"
    (foreign / "demo").mkdir(parents=True)
    with pytest.raises(SegvitError, match="not written by segvit"):
        demo.make_demo(foreign, num_train=2, num_val=1)


def test_preview_picture(tmp_path):
    demo.make_demo(tmp_path, num_train=1, num_val=3)
    out = demo.save_preview(INFO, tmp_path, tmp_path / "results" / "samples.png", count=3)
    picture = Image.open(out)
    assert picture.format == "PNG" and picture.width > 300
    assert not list(out.parent.glob(".*tmp"))  # written atomically, nothing left behind
    jpeg = demo.save_preview(INFO, tmp_path, tmp_path / "results" / "samples.jpg", count=1)
    assert Image.open(jpeg).format == "JPEG"
    with pytest.raises(SegvitError, match=r"samples.xyz: cannot save a picture as .xyz"):
        demo.save_preview(INFO, tmp_path, tmp_path / "results" / "samples.xyz")
