"""PASCAL-Context's two scores: mIoU over the 60 classes and mIoU59 without background.

The split and the model's predictions are stand-ins (set by hand), so the scores are counts:
`evaluate` must report the 60-class metrics and, for pascal-context only, the mIoU of the 59
classes that remain once background (class 0) labels are ignored.
"""

import numpy as np
import pytest
import torch

from segvit.data.catalog import get_dataset
from segvit.engine import evaluate as evaluate_module
from segvit.engine.evaluate import EvalSettings, evaluate
from segvit.modeling.variants import build_model

# (label, prediction, pixels): background labelled and predicted 1 (2 pixels), class 1
# predicted background (1), class 1 right (3), class 2 right (2), class 2 predicted 1 (1).
COUNTS = [(0, 1, 2), (1, 0, 1), (1, 1, 3), (2, 2, 2), (2, 1, 1)]
LABEL = torch.tensor([[lab for lab, _, n in COUNTS for _ in range(n)]])  # (1, 9)
PRED = torch.tensor([[[p for _, p, n in COUNTS for _ in range(n)]]])  # (1, 1, 9)


@pytest.fixture
def scored(monkeypatch, one_image_split):
    one_image_split(LABEL.numpy().astype(np.uint8))  # a split of one 1x9 image
    monkeypatch.setattr(evaluate_module, "infer_labels", lambda *args, **kwargs: PRED[0].clone())

    def score(dataset: str):
        info = get_dataset(dataset)
        torch.manual_seed(0)
        model = build_model("segvit_b", num_classes=info.num_classes, crop=32, tiny=True)
        return evaluate(model.eval(), info, EvalSettings(), progress=False)

    return score


def test_pascal_context_reports_the_59_classes_without_background(scored):
    results = scored("pascal-context")
    # 60 classes, 3 seen: background IoU 0 / (2 + 1 - 0); class 1 3 / (4 + 6 - 3);
    # class 2 2 / (3 + 2 - 2). The 57 others are NaN and do not count.
    assert results["IoU"][:3] == pytest.approx([0.0, 100 * 3 / 7, 100 * 2 / 3])
    assert results["mIoU"] == pytest.approx((0.0 + 100 * 3 / 7 + 100 * 2 / 3) / 3)
    assert results["aAcc"] == pytest.approx(100 * 5 / 9)
    # Without background labels class 1 is predicted on 4 pixels: 3 / (4 + 4 - 3).
    assert results["mIoU59"] == pytest.approx((100 * 3 / 5 + 100 * 2 / 3) / 2)


@pytest.mark.parametrize("dataset", ["pascal-context-59", "ade20k"])
def test_other_datasets_have_no_59_class_score(scored, dataset):
    results = scored(dataset)
    assert "mIoU59" not in results
    assert results["mIoU"] == pytest.approx((0.0 + 100 * 3 / 7 + 100 * 2 / 3) / 3)
