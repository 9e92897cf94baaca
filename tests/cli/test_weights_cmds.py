"""`segvit weights list|fetch`, `segvit convert`, and eval/predict of release:NAME."""

import importlib.util
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from segvit.data.demo import make_demo
from segvit.engine.loading import load_checkpoint

FAKES = Path(__file__).parents[1] / "modeling" / "release_fakes.py"


@pytest.fixture(scope="module")
def fakes():
    if "release_fakes" not in sys.modules:  # the module tests/modeling/conftest.py also loads
        spec = importlib.util.spec_from_file_location("release_fakes", FAKES)
        module = importlib.util.module_from_spec(spec)
        sys.modules["release_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["release_fakes"]


@pytest.fixture
def small_release(fakes, tmp_path):
    """A ViT-B release file at segvit's tiny width for the demo set: 8 classes, crop 128."""
    manifest = fakes.shrink(fakes.read_manifest("ade_51.3"), width=192, heads=3, crop=128,
                            classes=8)  # fmt: skip
    return fakes.write_release(tmp_path / "ade_51.3.pth", fakes.fake_state(manifest))


def test_list_shows_the_seven_with_paper_numbers_and_cache(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "PC59cls_62.3.pth").write_bytes(b"x")
    code, out, err = cli("weights", "list", "--cache", tmp_path)
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert list(rows) == [
        "ade_51.3", "ade_shrunk_53.9", "ade_54.6", "COCOstuff10k_shrunk_49.1", "COCOstuff_49.9",
        "PC59cls_62.3", "PC59cls_64.1",
    ]  # fmt: skip
    assert "51.3 / 53.0" in rows["ade_51.3"] and "120.9" in rows["ade_51.3"]
    assert "637.9" in rows["ade_54.6"] and "SegViT Shrunk ViT-L" in rows["PC59cls_62.3"]
    assert rows["PC59cls_62.3"].rstrip(" │").endswith("yes")
    assert rows["PC59cls_64.1"].rstrip(" │").endswith("no")
    assert str(tmp_path) in out and "huggingface.co/Akide/SegViTv1" in out


def test_fetch_offline_is_one_line_naming_url_and_place(cli, tmp_path, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, _, err = cli("weights", "fetch", "ade_54.6", "--cache", tmp_path)
    assert code == 1
    assert "https://huggingface.co/Akide/SegViTv1/resolve/main/ade_54.6.pth" in err
    assert "ade_54.6.pth" in err.split("save it as")[1]
    code, _, err = cli("weights", "fetch", "ade_99")
    assert code == 1 and "unknown released model 'ade_99'" in err


def test_convert_writes_weights_that_load_as_the_release(cli, small_release, tmp_path):
    out = tmp_path / "converted.safetensors"
    code, stdout, err = cli("convert", small_release, "--out", out)
    assert code == 0, err
    assert "segvit_b, 8 classes -> dataset unknown" in stdout and "crop 128" in stdout
    converted, meta = load_checkpoint(out)
    assert meta["source"] == "ade_51.3.pth" and meta["release"] == "ade_51.3"
    on_the_fly, _ = load_checkpoint(small_release)
    images = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(converted.predict(images), on_the_fly.predict(images))
    code, _, err = cli("convert", small_release, "--out", tmp_path / "x.pt")
    assert code == 0, err and (tmp_path / "x.pt").is_file()
    code, _, err = cli("convert", small_release, "--out", tmp_path / "x.txt")
    assert code == 1 and "--out" in err and ".safetensors" in err


def test_eval_and_predict_take_release_names(cli, small_release, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    cached = tmp_path / "cache" / "release" / "ade_51.3.pth"
    cached.parent.mkdir(parents=True)
    small_release.rename(cached)
    make_demo(tmp_path / "data", num_train=1, num_val=1)

    code, out, err = cli("eval", "release:ade_51.3", "--dataset", "demo", "--data-root", "data")
    assert code == 0, err
    results = json.loads(Path("runs/release/ade_51.3/eval_demo_ss.json").read_text())
    assert results["images"] == 1 and 0 <= results["mIoU"] <= 100

    image = next((tmp_path / "data" / "demo" / "images" / "validation").glob("*.jpg"))
    code, out, err = cli("predict", "release:ade_51.3", image, "--dataset", "demo", "--out", "p")
    assert code == 0, err and (tmp_path / "p" / f"{image.stem}_labels.png").is_file()

    code, _, err = cli("eval", cached, "--data-root", "data")  # a raw file: 8 classes, no name
    assert code == 1 and "does not say what it was trained on" in err
    code, _, err = cli("eval", "release:ade_54.6")
    assert code == 1 and "segvit weights fetch ade_54.6" in err
