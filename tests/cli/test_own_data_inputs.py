"""A user's own data at the command line: Ctrl-C in `prepare folder`, a rerun into a folder
holding another dataset file, `--out X.JSON`, and a checkpoint whose dataset moved."""

import numpy as np
from PIL import Image

from segvit.data.info import DatasetSpec, Split


def _folder(root, n=4):
    (root / "img").mkdir()
    (root / "mask").mkdir()
    for i in range(n):
        Image.new("RGB", (20, 12)).save(root / "img" / f"p{i}.jpg")
        Image.fromarray(np.full((12, 20), i % 2, np.uint8)).save(root / "mask" / f"p{i}.png")
    return root / "img", root / "mask"


def test_ctrl_c_during_prepare_folder_exits_130_with_a_word(cli, tmp_path, monkeypatch):
    import segvit.data.folder as folder

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(folder, "prepare_folder", interrupted)
    images, masks = _folder(tmp_path)
    code, out, err = cli("prepare", "folder", "--images", images, "--labels", masks,
                         "--out", tmp_path / "d")  # fmt: skip
    assert code == 130 and "interrupted: no dataset file was written" in out + err
    assert "Traceback" not in err and not (tmp_path / "d").exists()


def test_a_rerun_into_an_edited_dataset_file_is_refused_then_overwritten(cli, tmp_path):
    images, masks = _folder(tmp_path)
    args = ("prepare", "folder", "--images", images, "--labels", masks, "--out", tmp_path / "d")
    assert cli(*args)[0] == 0
    path = tmp_path / "d" / "dataset.yaml"
    path.write_text(path.read_text().replace("crop: 512", "crop: 128"))
    code, out, err = cli(*args, "--seed", "4")
    assert code == 1 and "exists and differs" in err.splitlines()[-1] and "Traceback" not in err
    assert "crop: 128" in path.read_text()
    assert cli(*args, "--seed", "4", "--overwrite")[0] == 0 and "crop: 512" in path.read_text()


def test_an_out_named_in_capitals_json_is_a_file(tmp_path):
    from segvit.engine.eval_output import results_file

    (tmp_path / "res").mkdir()
    path = results_file(tmp_path / "res" / "X.JSON", "w.pt", "eval", data_root="data")
    assert path == tmp_path / "res" / "X.JSON" and not path.exists()


def test_a_moved_dataset_suggests_dataset(tmp_path):
    spec = DatasetSpec(name="mine", classes=("a", "b"), train=Split("i", "l"), val=Split("i", "l"),
                       crop=64, source=str(tmp_path / "gone" / "dataset.yaml"))  # fmt: skip
    assert "pass --dataset" in spec.how_to_get() and "gone" in spec.how_to_get()
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "dataset.yaml").write_text("name: mine\n")
    assert spec.how_to_get() == f"check the folders named in {spec.source}"
