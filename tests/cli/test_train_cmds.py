"""train -> eval -> predict through the real `segvit` entry point, on a tiny demo set."""

import json

from segvit.data.demo import make_demo


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
    results = json.loads((tmp_path / "eval" / "eval_demo_ss.json").read_text())
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
