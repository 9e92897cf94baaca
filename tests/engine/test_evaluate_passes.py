"""Which inference passes `evaluate` asks for: one at the base scale, or the paper's six
ratios each with its horizontal flip; sliding windows of the crop at the dataset's stride.

# References: SegViT release test configs (MultiScaleFlipAug, img_ratios 0.5-1.75, flip).
"""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from segvit.data.catalog import get_dataset
from segvit.engine import evaluate as evaluate_module
from segvit.engine.evaluate import EvalSettings, evaluate
from segvit.modeling.variants import build_model


@pytest.fixture
def asked(monkeypatch, one_image_split):
    """Evaluate a tiny ADE20K model on one image; the inference settings it asked for."""
    calls = []

    def infer_labels(score_fn, image, settings, **kwargs):
        calls.append(asdict(settings))
        return torch.zeros(2, 2, dtype=torch.int64)

    one_image_split(np.zeros((2, 2), np.uint8))
    monkeypatch.setattr(evaluate_module, "infer_labels", infer_labels)

    def run(settings: EvalSettings):
        torch.manual_seed(0)
        model = build_model("segvit_b", num_classes=150, crop=512, tiny=True).eval()
        evaluate(model, get_dataset("ade20k"), settings, progress=False)
        (kwargs,) = calls[-1:]
        return kwargs

    return run


def test_single_scale_is_one_pass_without_flip(asked):
    kwargs = asked(EvalSettings())
    assert tuple(kwargs["scales"]) == (1.0,) and kwargs["flip"] is False
    assert (kwargs["mode"], kwargs["crop"], kwargs["stride"]) == ("slide", 512, 341)
    assert tuple(kwargs["base_scale"]) == (2048, 512) and kwargs["num_classes"] == 150


def test_multi_scale_is_the_papers_six_ratios_each_flipped(asked):
    kwargs = asked(EvalSettings(multi_scale=True, stride=256, mode="whole"))
    assert tuple(kwargs["scales"]) == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    assert kwargs["flip"] is True
    assert (kwargs["mode"], kwargs["stride"]) == ("whole", 256)
