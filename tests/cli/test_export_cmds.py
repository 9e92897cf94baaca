"""`segvit export`, and `segvit predict` / `segvit eval` of the exported model."""

import json

import numpy as np
import onnx
import torch
from PIL import Image

from segvit.data.demo import make_demo


def test_export_onnx_then_predict_and_eval_it(tmp_path, cli, tiny_checkpoint):
    torch.set_num_threads(1)
    weights = tiny_checkpoint("segvit_b")
    model_file = tmp_path / "model.onnx"
    code, out, err = cli("export", weights, "--format", "onnx", "--out", model_file)
    assert code == 0, err
    assert f"wrote {model_file}" in out
    onnx.checker.check_model(onnx.load(str(model_file)))

    data = tmp_path / "data"
    make_demo(data, num_train=1, num_val=2)
    image = next((data / "demo" / "images" / "validation").glob("*.jpg"))
    for source, folder in ((weights, "torch"), (model_file, "onnx")):
        code, _, err = cli("predict", source, image, "--out", tmp_path / folder, "--device", "cpu")
        assert code == 0, err
    torch_labels, onnx_labels = (
        np.asarray(Image.open(tmp_path / f / f"{image.stem}_labels.png")) for f in ("torch", "onnx")
    )
    assert (torch_labels == onnx_labels).mean() > 0.999  # ties aside (tests/export)

    scores = {}
    for source, name in ((weights, "torch.json"), (model_file, "onnx.json")):
        code, _, err = cli("eval", source, "--data-root", data, "--out", tmp_path / name)
        assert code == 0, err
        scores[name] = json.loads((tmp_path / name).read_text())
    assert scores["onnx.json"]["images"] == 2
    assert abs(scores["onnx.json"]["aAcc"] - scores["torch.json"]["aAcc"]) < 0.1


def test_export_folder_and_bad_inputs(tmp_path, cli, tiny_checkpoint):
    weights = tiny_checkpoint("segvit_b")
    code, out, err = cli("export", weights, "--format", "folder", "--out", tmp_path / "mine")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == [
        "README.md", "config.json", "model.safetensors",
    ]  # fmt: skip

    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    code, _, err = cli("predict", tmp_path / "mine", image, "--dataset", "ade20k")
    assert code == 1 and "150 classes, but the segvit_b checkpoint predicts 8" in err

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"garbage")
    code, _, err = cli("predict", corrupt, image, "--out", tmp_path / "p")
    assert code == 1 and "corrupt.onnx: not a readable ONNX model" in err
    assert len(err.strip().splitlines()) == 1

    code, _, err = cli("export", weights, "--format", "tflite", "--out", tmp_path / "m")
    assert code == 1 and "--format tflite: expected one of onnx, folder" in err
    code, _, err = cli("export", weights, "--out", tmp_path / "m.bin")
    assert code == 1 and "expected a .onnx file name" in err
    code, _, err = cli("predict", weights, image, "--precision", "fp8")
    assert code == 1 and "--precision fp8: expected one of auto, fp32, bf16" in err


def test_an_exported_model_refuses_a_dataset_of_other_class_names():
    from dataclasses import replace

    import pytest

    from segvit.api import _dataset
    from segvit.data.catalog import get_dataset
    from segvit.errors import SegvitError

    demo = get_dataset("demo")
    renamed = replace(demo, name="shapes", classes=("sky", *demo.classes[1:]))
    record = {"num_classes": 8, "dataset_spec": renamed.to_record()}
    with pytest.raises(SegvitError, match="exported with the classes of shapes.*class 0: 'sky'"):
        _dataset(record, "demo", "model.onnx", exported=True)
    assert _dataset(record, None, "model.onnx", exported=True).classes[0] == "sky"
