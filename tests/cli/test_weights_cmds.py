"""`segvit weights list|fetch`, `segvit convert`, and eval/predict of release:NAME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import segvit
from segvit.data.demo import make_demo
from segvit.engine.loading import load_checkpoint
from segvit.modeling import release

FAKES = Path(__file__).parents[1] / "modeling" / "release_fakes.py"
HUB_SERVER = Path(__file__).parents[1] / "modeling" / "hub_server.py"
PAYLOAD = bytes(range(256)) * 64  # 16 KiB stands in for a checkpoint
STAND_IN_BYTES = (1, 2 * len(PAYLOAD))  # the sizes a stand-in release file may have here


@pytest.fixture(scope="module")
def fakes(load_by_path):
    return load_by_path("release_fakes", FAKES)  # as tests/modeling/conftest.py loads it


@pytest.fixture
def small_release(fakes, tmp_path):
    """A ViT-B release file at segvit's tiny width for the demo set: 8 classes, crop 128."""
    manifest = fakes.shrink(fakes.read_manifest("ade_51.3"), width=192, heads=3, crop=128,
                            classes=8)  # fmt: skip
    return fakes.write_release(tmp_path / "ade_51.3.pth", fakes.fake_state(manifest))


@pytest.fixture
def hub(load_by_path, monkeypatch, tmp_path):
    """A stand-in hub on 127.0.0.1 holding ade_51.3.pth, huggingface_hub pointed at it
    through HF_ENDPOINT and HF_HOME (tmp_path/hf); $SEGVIT_WEIGHTS is tmp_path/weights.
    Yields (the hub_server module, the running server)."""
    module = load_by_path("hub_server", HUB_SERVER)
    # The 16 KiB stand-in passes for the release's file (the real bounds: test_release.py).
    monkeypatch.setattr(release, "expected_bytes", lambda r: STAND_IN_BYTES)
    with module.serving(monkeypatch, tmp_path, {"ade_51.3.pth": module.HubFile(PAYLOAD)}) as server:
        yield module, server


def test_list_shows_the_seven_with_paper_numbers_and_cache(cli, hub, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    placed = tmp_path / "weights" / "release" / "PC59cls_62.3.pth"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"x")
    code, out, err = cli("weights", "fetch", "ade_51.3")
    assert code == 0, err
    fetched = next(
        (tmp_path / "hf" / "hub").glob("models--Akide--SegViTv1/snapshots/*/ade_51.3.pth")
    )
    assert out.strip() == f"ade_51.3: {fetched} (0 MB, SHA-256 checked)"
    code, out, err = cli("weights", "list")
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert list(rows) == [
        "ade_51.3", "ade_shrunk_53.9", "ade_54.6", "COCOstuff10k_shrunk_49.1", "COCOstuff_49.9",
        "PC59cls_62.3", "PC59cls_64.1",
    ]  # fmt: skip
    assert "51.3 / 53.0" in rows["ade_51.3"] and "120.9" in rows["ade_51.3"]
    assert "637.9" in rows["ade_54.6"] and "SegViT Shrunk ViT-L" in rows["PC59cls_62.3"]
    assert rows["ade_51.3"].rstrip(" │").endswith("hub cache")
    assert rows["PC59cls_62.3"].rstrip(" │").endswith("by hand")
    assert rows["PC59cls_64.1"].rstrip(" │").endswith("no")
    lines = out.splitlines()
    assert f"ade_51.3: {fetched}" in lines and f"PC59cls_62.3: {placed}" in lines
    assert f"hub cache: {tmp_path / 'hf' / 'hub'} (HF_HOME" in out
    assert f"downloads from {hub[1].hub.endpoint} (HF_ENDPOINT)" in out
    assert f"placed by hand: {placed.parent}/NAME.pth" in out
    code, out, err = cli("weights", "fetch", "PC59cls_62.3")  # the stand-in hub lacks it
    assert code == 0, err
    unchecked = "placed by hand, not checked against the hub"
    assert out.strip() == f"PC59cls_62.3: {placed} (0 MB, {unchecked})"


def test_fetch_offline_is_one_line_naming_the_file_and_places(cli, hub, tmp_path, monkeypatch):
    module, server = hub
    module.point_hub(monkeypatch, endpoint=server.hub.endpoint, home=tmp_path / "hf", offline=True)
    code, _, err = cli("weights", "fetch", "ade_54.6")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "HF_HUB_OFFLINE is set" in err and "`hf download Akide/SegViTv1 ade_54.6.pth`" in err
    assert f"save it as {tmp_path / 'weights' / 'release' / 'ade_54.6.pth'}" in err
    code, _, err = cli("weights", "fetch", "ade_99")
    assert code == 1 and "unknown released model 'ade_99'" in err


def _segvit(*args, env):
    """The installed command in a fresh process: huggingface_hub reads its variables there."""
    stand_in = f"import segvit.modeling.release as r; r.expected_bytes = lambda _: {STAND_IN_BYTES}"
    command = [sys.executable, "-c", f"{stand_in}; from segvit.cli import main; main()", *args]
    command = [str(part) for part in command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_command_takes_the_hub_variables_from_its_environment(load_by_path, tmp_path):
    module = load_by_path("hub_server", HUB_SERVER)
    server = module.HubServer({"ade_51.3.pth": module.HubFile(PAYLOAD)})
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env |= {
        "HF_ENDPOINT": server.hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "NO_PROXY": "*",
        "SEGVIT_WEIGHTS": str(tmp_path / "weights"), "COLUMNS": "200",
        "PYTHONPATH": str(Path(segvit.__file__).parents[1]),
    }  # fmt: skip
    try:  # TQDM_POSITION=-1: the library's switch for its bars where stderr is no terminal
        done = _segvit("weights", "fetch", "ade_51.3", env=env | {"TQDM_POSITION": "-1"})
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "ade_51.3.pth: 100%" in done.stderr and "16.4k/16.4k" in done.stderr  # the bar
    blob = (
        tmp_path
        / "hf"
        / "hub"
        / "models--Akide--SegViTv1"
        / "blobs"
        / module.HubFile(PAYLOAD).sha256
    )
    assert blob.read_bytes() == PAYLOAD
    offline = env | {"HF_HUB_OFFLINE": "1"}
    done = _segvit("weights", "list", env=offline)
    assert done.returncode == 0 and "ade_51.3: " + str(tmp_path / "hf" / "hub") in done.stdout
    done = _segvit("weights", "fetch", "PC59cls_64.1", env=offline)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "HF_HUB_OFFLINE is set" in done.stderr


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
