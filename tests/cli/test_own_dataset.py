"""Your own data end to end, as the README shows it: prepare folder -> train -> eval -> predict,
with the dataset named by its file, then found again through the checkpoint."""

import json
from dataclasses import replace

import numpy as np
from PIL import Image

import segvit.experiments.smoke_backbone as sb
from segvit.data.catalog import load_dataset
from segvit.experiments.smoke_backbone import PRETEXT, smoke_backbone


def _photos_and_masks(root, n=8):
    """Squares of class 1 or 2 on background 0, each square a distinct colour."""
    images, masks = root / "photos", root / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        rgb = np.full((48, 64, 3), 30, np.uint8)
        ids = np.zeros((48, 64), np.uint8)
        y, x, k = int(rng.integers(0, 24)), int(rng.integers(0, 40)), 1 + i % 2
        rgb[y : y + 24, x : x + 24] = (220, 40, 40) if k == 1 else (40, 40, 220)
        ids[y : y + 24, x : x + 24] = k
        Image.fromarray(rgb).save(images / f"shot{i}.png")
        Image.fromarray(ids).save(masks / f"shot{i}.png")
    (root / "classes.txt").write_text("floor\nred box\nblue box\n")
    return images, masks


def test_prepare_train_eval_predict_on_a_folder(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, masks = _photos_and_masks(tmp_path)
    code, out, err = cli(
        "prepare", "folder", "--images", images, "--labels", masks, "--classes", "classes.txt",
        "--out", "mydata", "--crop", "64", "--val-fraction", "0.25",
    )  # fmt: skip
    assert code == 0, err
    assert "mydata verified: 3 classes, 6 train / 2 val images" in " ".join(out.split())

    code, out, err = cli("datasets", "mydata/dataset.yaml")
    assert code == 0, err
    assert "mydata" in out and "6 / 2" in out

    code, out, err = cli(
        "train", "atm_single_b", "--dataset", "mydata/dataset.yaml", "--preset", "smoke",
        "--iters", "2", "--batch", "2", "--workers", "0", "--pretrained", "none",
    )  # fmt: skip
    assert code == 0, err
    weights = tmp_path / "runs" / "atm_single_b-mydata-smoke" / "last.pt"
    assert "trained atm_single_b on mydata: 2 iterations" in out and weights.is_file()

    code, out, err = cli("eval", weights, "--dataset", "mydata/dataset.yaml", "--out", "e1")
    assert code == 0, err
    assert "blue box" in out  # the per-class table names the file's classes
    # Without --dataset the checkpoint says where its data is and what its classes are.
    code, out, err = cli("eval", weights, "--out", "e2")
    assert code == 0, err
    first, second = (
        json.loads((tmp_path / d / "eval_last_mydata_ss.json").read_text()) for d in ("e1", "e2")
    )
    assert first["images"] == second["images"] == 2 and first["mIoU"] == second["mIoU"]
    assert second["classes"] == ["floor", "red box", "blue box"]

    # predict names the classes without the dataset file, from anywhere.
    (tmp_path / "mydata" / "dataset.yaml").rename(tmp_path / "elsewhere.yaml")
    code, out, err = cli("predict", weights, images / "shot0.png", "--out", "p")
    assert code == 0, err
    assert (tmp_path / "p" / "shot0_overlay.png").is_file()
    labels = np.asarray(Image.open(tmp_path / "p" / "shot0_labels.png"))
    assert labels.shape == (48, 64) and labels.max() < 3
    # A dataset of another class count is refused, as eval refuses it.
    code, _, err = cli("predict", weights, images / "shot0.png", "--dataset", "ade20k")
    assert code == 1 and "150 classes, but the atm_single_b checkpoint predicts 3" in err


def test_the_smoke_backbone_pretrains_on_the_users_dataset(tmp_path, cli, monkeypatch):
    """On a dataset other than the demo, the smoke backbone is pretrained on that dataset's
    training split by the same pretext task, and cached beside the dataset file."""
    monkeypatch.chdir(tmp_path)
    images, masks = _photos_and_masks(tmp_path)
    code, _, err = cli("prepare", "folder", "--images", images, "--labels", masks,
                       "--out", "mydata", "--crop", "64")  # fmt: skip
    assert code == 0, err
    spec = load_dataset("mydata/dataset.yaml")
    assert spec.classes == ("0", "1", "2")  # no classes file: numbered from the ids found
    quick = replace(PRETEXT, recipe=replace(PRETEXT.recipe, iters=2, batch=2, warmup_iters=1,
                                             checkpoint_interval=2, log_interval=1))  # fmt: skip
    path = smoke_backbone(tmp_path / "unused-data-root", dataset=spec, pretext=quick,
                          num_workers=0)  # fmt: skip
    assert path.parent == tmp_path / "mydata" / "smoke-backbone" and path.is_file()
    # The same data is the same key: read from the cache, not trained again.
    monkeypatch.setattr(sb, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    assert smoke_backbone(tmp_path, dataset=spec, pretext=quick, num_workers=0) == path


def test_datasets_checks_the_counts_a_file_states(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, masks = _photos_and_masks(tmp_path, n=4)
    code, _, err = cli("prepare", "folder", "--images", images, "--labels", masks,
                       "--out", "mydata", "--crop", "64", "--val-fraction", "0.25")  # fmt: skip
    assert code == 0, err
    spec_file = tmp_path / "mydata" / "dataset.yaml"
    spec_file.write_text(spec_file.read_text().replace("count: 3", "count: 5"))
    code, _, err = cli("datasets", "mydata/dataset.yaml")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "3 train image/label pairs, expected 5 for mydata; the count in" in " ".join(err.split())
