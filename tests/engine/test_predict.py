"""Prediction pictures: raw label maps keep the class ids; overlays are written."""

import numpy as np
import pytest
import torch
from PIL import Image

from segvit.engine.predict import read_rgb, save_prediction, segment
from segvit.errors import SegvitError
from segvit.modeling.variants import ModelConfig, build_model


def test_labels_png_holds_the_class_ids(tmp_path):
    rgb = np.full((40, 60, 3), 120, np.uint8)
    classes = np.zeros((40, 60), np.int64)
    classes[10:30, 20:50] = 5
    overlay, labels = save_prediction(rgb, classes, "demo", tmp_path, "img")
    assert np.array_equal(np.asarray(Image.open(labels)), classes)
    assert Image.open(overlay).format == "PNG"
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


def test_segment_returns_a_map_at_the_image_size():
    torch.manual_seed(0)
    model = build_model(ModelConfig("segvit_b", "demo", crop=64, tiny=True)).eval()
    classes = segment(model, np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8))
    assert classes.shape == (50, 70)
    assert classes.min() >= 0 and classes.max() < 8


def test_unreadable_images_are_one_line_errors(tmp_path):
    with pytest.raises(SegvitError, match="nope.jpg: no such image"):
        read_rgb(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(SegvitError, match="bad.jpg: not a readable image"):
        read_rgb(bad)
