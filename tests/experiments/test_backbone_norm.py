"""Normalisation comes from the weights: training's transform, evaluation and prediction
all read the model's `norm` (a DINOv2 model: ImageNet's; a Swin-T row: ImageNet's too)."""

import numpy as np
import torch

import segvit.experiments.spec as spec_module
from segvit.data.catalog import load_dataset
from segvit.data.demo import make_demo
from segvit.engine.predict import segment
from segvit.experiments.spec import resolve, train_experiment
from segvit.modeling.specs import IMAGENET_NORM, Normalization
from segvit.modeling.variants import build_model

ODD = Normalization((10.0, 20.0, 30.0), (2.0, 4.0, 8.0))


def test_training_uses_the_models_norm(tmp_path, monkeypatch):
    make_demo(tmp_path / "data", num_train=2, num_val=1)
    seen = {}
    monkeypatch.setattr(spec_module, "train", lambda cfg, **kw: seen.update(kw))
    experiment = resolve("segvit", "demo", recipe="smoke", backbone="vit_small_patch14_dinov2",
                         pretrained=None)  # fmt: skip
    train_experiment(experiment, work_dir=tmp_path / "run", data_root=tmp_path / "data")
    assert seen["transform"].norm == IMAGENET_NORM == seen["model"].norm


def test_swin_rows_normalise_with_imagenet_statistics():
    model = build_model("segvit_swin_t", num_classes=3, crop=64, tiny=True)
    assert model.norm == IMAGENET_NORM
    meta = model.meta.to_dict()
    assert (meta["norm_mean"], meta["norm_std"]) == ("123.675,116.28,103.53", "58.395,57.12,57.375")


def test_prediction_and_evaluation_normalise_with_the_models_norm():
    model = build_model("segvit", num_classes=8, crop=64, tiny=True,
                        backbone="deit3_small_patch16_224").eval()  # fmt: skip
    model.use_norm(ODD)
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0][0, :, 0, 0]))
    rgb = np.full((64, 64, 3), 100, np.uint8)
    segment(model, rgb, load_dataset("demo"))
    expected = torch.tensor([(100 - 10) / 2, (100 - 20) / 4, (100 - 30) / 8])
    torch.testing.assert_close(seen[0], expected)
