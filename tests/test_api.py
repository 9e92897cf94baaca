"""The Python API: segvit.load's sources, predict's inputs and outputs, one inference path."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import segvit
from segvit.errors import SegvitError


@pytest.fixture(autouse=True)
def one_thread():  # see tests/export/conftest.py
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def photo_file(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (60, 80, 3), np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


def test_import_is_cheap_and_exports_what_is_documented():
    code = "import sys, segvit; print('torch' in sys.modules, sorted(segvit.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False ['SegvitError', 'SegvitModel', 'load']"
    assert segvit.SegvitError is SegvitError
    with pytest.raises(AttributeError):
        segvit.no_such_name  # noqa: B018


def test_a_weights_file_and_its_run_folder_load_alike(tiny_checkpoint, photo_file):
    path, rgb = photo_file
    weights = tiny_checkpoint("segvit_b")
    by_file = segvit.load(weights, device="cpu")
    by_folder = segvit.load(weights.parent, device="cpu")  # a run folder: its best.pt
    assert by_file.backend == by_folder.backend == "torch"
    assert by_file.classes[:2] == ("background", "disc") and len(by_file.classes) == 8
    assert by_file.palette.shape == (8, 3) and by_file.palette.dtype == np.uint8
    labels = by_file.predict(path)
    assert labels.shape == (60, 80) and labels.dtype == np.uint8
    assert np.array_equal(by_folder.predict(path), labels)
    assert np.array_equal(by_file.predict(rgb), labels)  # array, path and PIL image alike
    assert np.array_equal(by_file.predict(Image.open(path)), labels)


def test_scores_are_probabilities_whose_argmax_is_the_labels(tiny_checkpoint, photo_file):
    path, _ = photo_file
    model = segvit.load(tiny_checkpoint("segvit_b"), device="cpu")
    scores = model.predict(path, output="scores")
    assert scores.shape == (8, 60, 80) and scores.dtype == np.float32
    assert np.allclose(scores.sum(0), 1, atol=1e-5)
    top2 = np.sort(scores, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-5
    assert np.array_equal(scores.argmax(0)[clear], model.predict(path)[clear])


def test_overlay_blends_the_palette(tiny_checkpoint, photo_file):
    path, rgb = photo_file
    model = segvit.load(tiny_checkpoint("segvit_b"), device="cpu")
    labels = np.zeros((60, 80), np.uint8)
    labels[:, 40:] = 3
    picture = model.overlay(rgb, labels)
    expected = (rgb[0, 50].astype(int) * 45 + model.palette[3].astype(int) * 55) // 100
    assert picture.shape == rgb.shape and picture.dtype == np.uint8
    assert np.array_equal(picture[0, 50], expected)
    with pytest.raises(SegvitError, match="labels outside 0..7"):
        model.overlay(rgb, labels + 9)


def test_wrong_images_and_sources_are_one_line_errors(tiny_checkpoint, tmp_path):
    model = segvit.load(tiny_checkpoint("segvit_b"), device="cpu")
    for image, said in (
        (np.zeros((8, 8, 3), np.float32), r"expected an \(H, W, 3\) uint8 RGB array, got float32"),
        (np.zeros((8, 8), np.uint8), r"got uint8 \(8, 8\)"),
        ([[0, 0, 0]], "expected a path, a PIL image or an .* got list"),
        (tmp_path / "missing.jpg", "missing.jpg: no such image"),
    ):
        with pytest.raises(SegvitError, match=said):
            model.predict(image)
    with pytest.raises(SegvitError, match="output 'logits'"):
        model.predict(np.zeros((8, 8, 3), np.uint8), output="logits")
    with pytest.raises(SegvitError, match="nowhere.pt: no such file or folder"):
        segvit.load(tmp_path / "nowhere.pt")
    with pytest.raises(SegvitError, match="neither model.safetensors"):
        segvit.load(tmp_path)
    with pytest.raises(SegvitError, match="unknown released model 'release:nope'"):
        segvit.load("release:nope")


def test_precision_auto_follows_the_hardware_and_bf16_runs(tiny_checkpoint, photo_file):
    from segvit.engine.backend import cpu_has_bf16_units, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, bf16_units=True) == "bf16"
    assert resolve_precision("auto", cpu, bf16_units=False) == "fp32"
    assert resolve_precision("fp32", cpu, bf16_units=True) == "fp32"
    assert cpu_has_bf16_units({"avx2", "amx_bf16"}) and not cpu_has_bf16_units({"avx2"})
    with pytest.raises(SegvitError, match="--precision fp16: expected one of auto, fp32, bf16"):
        resolve_precision("fp16", cpu)
    path, _ = photo_file
    model = segvit.load(tiny_checkpoint("segvit_b"), device="cpu")
    fp32 = model.predict(path, precision="fp32", output="scores")
    bf16 = model.predict(path, precision="bf16", output="scores")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert 0 < np.abs(bf16 - fp32).max() < 0.05  # autocast ran, and stayed close


def test_predict_equals_the_label_png_segvit_predict_writes(tiny_checkpoint, photo_file, tmp_path):
    from segvit.cli import main

    path, _ = photo_file
    weights = tiny_checkpoint("segvit_b")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        main(["predict", str(weights), str(path), "--out", str(out), "--device", "cpu"])
    assert done.value.code == 0
    written = (out / "photo_labels.png").read_bytes()
    labels = segvit.load(weights, device="cpu").predict(path)
    assert np.array_equal(np.asarray(Image.open(out / "photo_labels.png")), labels)
    again = tmp_path / "again.png"
    Image.fromarray(labels).save(again, format="PNG")  # as save_prediction encodes it
    assert again.read_bytes() == written
