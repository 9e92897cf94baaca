"""train -> eval -> predict through the real `segvit` entry point, on a tiny demo set."""

import json
import shutil

import pytest
import torch

from segvit.data.demo import make_demo
from segvit.engine.checkpoint import save_weights, weights_meta
from segvit.modeling.variants import build_model


def test_train_eval_predict(tmp_path, cli):
    data = tmp_path / "data"
    make_demo(data, num_train=6, num_val=2)
    work = tmp_path / "run"
    code, out, err = cli(
        "train", "segvit_b", "--preset", "smoke", "--iters", "3", "--batch", "2",
        "--workers", "0", "--data-root", data, "--work-dir", work, "--pretrained", "none",
    )  # fmt: skip
    assert code == 0, err
    assert "trained segvit_b on demo: 3 iterations" in out
    assert (work / "last.pt").is_file() and (work / "log.jsonl").is_file()

    code, out, err = cli("eval", work / "last.pt", "--data-root", data, "--out", tmp_path / "eval")
    assert code == 0, err
    results = json.loads((tmp_path / "eval" / "eval_last_demo_ss.json").read_text())
    assert results["images"] == 2 and 0 <= results["aAcc"] <= 100
    assert "mIoU" in out and "crescent" in out  # the per-class table

    image = next((data / "demo" / "images" / "validation").glob("*.jpg"))
    code, out, err = cli("predict", work / "last.pt", image, "--out", tmp_path / "p")
    assert code == 0, err
    assert (tmp_path / "p" / f"{image.stem}_overlay.png").is_file()
    assert (tmp_path / "p" / f"{image.stem}_labels.png").is_file()

    code, _, err = cli("eval", work / "last.pt", "--dataset", "ade20k")
    assert code == 1 and "150 classes, but the segvit_b checkpoint predicts 8" in err

    # Bad places and bad files end in one line, never a traceback.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = cli("predict", work / "last.pt", image, "--out", blocker / "sub")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "a-file" in err, err
    image.write_bytes(image.read_bytes()[:200])  # a corrupt image in the middle of the split
    code, _, err = cli("eval", work / "last.pt", "--data-root", data, "--out", tmp_path / "e2")
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert code == 1 and last.startswith("error:") and image.name in last, err
    assert "Traceback" not in err
    assert not (tmp_path / "e2").exists()  # nothing half-written


def test_train_without_data_says_how_to_prepare(tmp_path, cli):
    code, _, err = cli("train", "segvit_b", "--preset", "smoke", "--iters", "1",
        "--data-root", tmp_path, "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert code == 1
    assert "segvit prepare demo" in err


@pytest.fixture
def demo_weights(tmp_path):
    """A tiny untrained SegViT for the demo set as `segvit train` saves it, and the data."""
    torch.manual_seed(0)
    model = build_model("segvit_b", num_classes=8, crop=128, tiny=True)
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    meta = weights_meta(model, record={"trained_on": "demo"}, iteration=0)
    save_weights(path, model.state_dict(), meta)
    make_demo(tmp_path / "data", num_train=2, num_val=2)
    return path, tmp_path / "data"


def test_eval_out_names_the_file_and_writes_strict_json(tmp_path, cli, demo_weights):
    weights, data = demo_weights
    code, out, err = cli("eval", weights, "--data-root", data, "--out", tmp_path / "r.json",
                         "--stride", "64")  # fmt: skip
    assert code == 0, err
    assert "eval demo" not in err  # no progress bar in a log: stderr is not a terminal here
    text = (tmp_path / "r.json").read_text()  # a file, not a folder
    results = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))
    assert results["data_root"] == str(data.resolve())
    # Two validation images cannot hold all 8 classes: those IoUs have no pixels: null.
    assert None in results["IoU"]
    assert results["settings"]["stride"] == 64


def test_an_eval_beside_a_checkpoint_never_replaces_another(tmp_path, cli, demo_weights):
    weights, data = demo_weights
    assert cli("eval", weights, "--data-root", data)[0] == 0
    first = weights.parent / "eval_last_demo_ss.json"
    before = first.read_text()
    # Other settings: another file; the first stays as it was.
    code, _, err = cli("eval", weights, "--data-root", data, "--max-images", "1")
    assert code == 0, err
    assert json.loads((weights.parent / "eval_last_demo_ss_first1.json").read_text())["images"] == 1
    # Another data root with the same settings: refused before any work.
    other = tmp_path / "other"
    shutil.copytree(data, other)
    code, _, err = cli("eval", weights, "--data-root", other)
    assert code == 1 and "holds scores of" in err and "pass --out" in err, err
    assert first.read_text() == before


def test_eval_refuses_stride_0_and_places_that_are_files_before_any_work(
    tmp_path, cli, demo_weights
):
    weights, data = demo_weights
    code, _, err = cli("eval", weights, "--data-root", data, "--stride", "0")
    assert code == 1 and "--stride 0: expected at least 1" in err
    (tmp_path / "taken").write_text("")
    code, out, err = cli("eval", weights, "--data-root", data, "--out", tmp_path / "taken")
    assert code == 1 and "a file is there; expected a .json file or a folder" in err
    assert "mIoU" not in out
    code, out, err = cli("predict", weights, "x.jpg", "--out", tmp_path / "taken")
    assert code == 1 and "--out" in err and "a file is there" in err


def test_train_refuses_a_finished_run_and_says_how_to_resume_after_ctrl_c(
    tmp_path, cli, demo_weights, monkeypatch
):
    weights, data = demo_weights
    args = ("train", "segvit_b", "--preset", "smoke", "--data-root", data, "--work-dir",
            weights.parent, "--pretrained", "none", "--iters", "1", "--workers", "0")  # fmt: skip
    code, _, err = cli(*args)
    assert code == 1 and "holds a run (last.pt)" in err and "--overwrite" in err
    assert cli(*args, "--resume", "--overwrite")[2].count("pick one") == 1

    from segvit.experiments import spec

    def interrupted(*_, work_dir, **__):
        (work_dir / "last.state.pt").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(spec, "train_experiment", interrupted)
    code, _, err = cli(*args, "--overwrite")
    assert code == 130 and "last.state.pt holds the last checkpoint; rerun with --resume" in err


def test_eval_prints_the_score_without_background_where_the_dataset_has_one(capsys):
    from segvit.cli import train_cmds
    from segvit.data.catalog import get_dataset

    for name, shown in (("pascal-context", "mIoU (59 classes) 64.00"), ("ade20k", None)):
        spec = get_dataset(name)
        results = {"classes": spec.classes[:1], "IoU": [50.0], "Acc": [60.0], "mIoU": 59.0,
                   "aAcc": 80.0, "mAcc": 70.0, "images": 1, "seconds": 1.0}  # fmt: skip
        if spec.background is not None:
            results[f"mIoU{spec.num_classes - 1}"] = 64.0
        train_cmds._print_results(results, spec, title="t")
        out = " ".join(capsys.readouterr().out.split())
        assert "mIoU 59.00" in out
        assert (shown in out) if shown else "classes)" not in out
