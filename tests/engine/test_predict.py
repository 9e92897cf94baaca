"""Prediction pictures: raw label maps keep the class ids; overlays are written."""

import numpy as np
import pytest
import torch
from PIL import Image

from segvit.data.catalog import get_dataset
from segvit.engine.predict import output_names, predict_images, read_rgb, save_prediction, segment
from segvit.errors import SegvitError
from segvit.modeling.variants import build_model


def test_labels_png_holds_the_class_ids(tmp_path):
    rgb = np.full((40, 60, 3), 120, np.uint8)
    classes = np.zeros((40, 60), np.int64)
    classes[10:30, 20:50] = 5
    overlay, labels = save_prediction(rgb, classes, get_dataset("demo"), tmp_path, "img")
    assert np.array_equal(np.asarray(Image.open(labels)), classes)
    assert Image.open(overlay).format == "PNG"
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


def test_segment_returns_a_map_at_the_image_size():
    torch.manual_seed(0)
    model = build_model("segvit_b", num_classes=8, crop=64, tiny=True).eval()
    rgb = np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8)
    classes = segment(model, rgb, get_dataset("demo"))
    assert classes.shape == (50, 70) and classes.dtype == np.uint8  # not int64: 1 byte a pixel
    assert classes.min() >= 0 and classes.max() < 8


@pytest.mark.parametrize("size", [(20000, 4), (4, 20000), (3000, 2)])
def test_very_elongated_photos_are_segmented_at_their_size(size):
    torch.manual_seed(0)
    model = build_model("segvit_b", num_classes=8, crop=64, tiny=True).eval()
    rgb = np.random.default_rng(0).integers(0, 255, (*size, 3), np.uint8)
    assert segment(model, rgb, get_dataset("demo")).shape == size


def test_unreadable_images_are_one_line_errors(tmp_path):
    with pytest.raises(SegvitError, match="nope.jpg: no such image"):
        read_rgb(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(SegvitError, match="bad.jpg: not a readable image"):
        read_rgb(bad)


def test_images_with_the_same_name_keep_their_own_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model("segvit_b", num_classes=8, crop=64, tiny=True).eval()
    paths = []
    for folder, value in (("a", 30), ("b", 200)):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "x.png")
        Image.fromarray(np.full((40, 50, 3), value, np.uint8)).save(paths[-1])
    assert output_names(paths + [tmp_path / "c" / "y.jpg", paths[0]]) == ["x", "x-2", "y", "x-3"]
    written = list(predict_images(model, paths, get_dataset("demo"), tmp_path / "out"))
    overlays = [overlay for _, overlay, _ in written]
    assert [o.name for o in overlays] == ["x_overlay.png", "x-2_overlay.png"]
    assert all(o.is_file() for o in overlays)
    assert [source for source, _, _ in written] == paths
