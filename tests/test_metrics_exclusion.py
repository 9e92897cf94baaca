"""What `SegMetric.compute(exclude=...)` does to the scores of the classes that remain.

Excluding a class is scoring as if its LABELLED pixels were ignored: its row of the confusion
matrix goes, its column stays (a pixel of another class predicted as it is still a miss). The
references are a hand count and mmseg's intersect_and_union over relabelled maps.
"""

import math

import numpy as np
import pytest
import torch

from segvit.metrics import SegMetric

IGN = 255


def _pairs(*counts: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, label) pixel rows holding `n` pixels of each (label, prediction)."""
    label = [lab for lab, _, n in counts for _ in range(n)]
    pred = [p for _, p, n in counts for _ in range(n)]
    return torch.tensor([pred]), torch.tensor([label])


def test_excluding_background_by_hand():
    # K = 3, class 0 background. (label, prediction, pixels):
    pred, label = _pairs(
        (0, 1, 2),  # background labelled, predicted 1: left out once 0 is excluded
        (1, 0, 1),  # class 1 predicted background: still a miss for class 1
        (1, 1, 3),
        (2, 2, 2),
        (2, 1, 1),
    )
    metric = SegMetric(num_classes=3)
    metric.update(pred, label)
    before = metric.confusion.clone()
    r = metric.compute(exclude=(0,))
    # Class 1: intersection 3, labelled 4, predicted 3 + 1 (the 2 background pixels gone):
    # union 4 + 4 - 3 = 5. Class 2: intersection 2, labelled 3, predicted 2: union 3.
    assert math.isnan(r["IoU"][0]) and math.isnan(r["Acc"][0])
    assert r["IoU"][1:] == pytest.approx([100 * 3 / 5, 100 * 2 / 3])
    assert r["Acc"][1:] == pytest.approx([100 * 3 / 4, 100 * 2 / 3])
    assert r["mIoU"] == pytest.approx((100 * 3 / 5 + 100 * 2 / 3) / 2)
    assert r["mAcc"] == pytest.approx((100 * 3 / 4 + 100 * 2 / 3) / 2)
    assert r["aAcc"] == pytest.approx(100 * 5 / 7)  # 5 right of the 7 non-background pixels
    # The state is untouched: the full score afterwards still counts background.
    assert torch.equal(metric.confusion, before)
    full = metric.compute()
    assert full["IoU"] == pytest.approx([0.0, 100 * 3 / 7, 100 * 2 / 3])  # class 1: 3 / (4+6-3)
    assert full["aAcc"] == pytest.approx(100 * 5 / 9)


def _mmseg_reference(pred: np.ndarray, label: np.ndarray, K: int, exclude: set[int]):
    """mmseg's intersect_and_union / total_area_to_metrics with the excluded labels set to
    the ignore index first; excluded classes then left out of the means."""
    label = np.where(np.isin(label, list(exclude)), IGN, label)
    keep = label != IGN
    pred, label = pred[keep], label[keep]
    bins = np.arange(K + 1)
    inter = np.histogram(pred[pred == label], bins)[0].astype(float)
    area_pred = np.histogram(pred, bins)[0].astype(float)
    area_label = np.histogram(label, bins)[0].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_pred + area_label - inter)
        acc = inter / area_label
    iou[list(exclude)] = np.nan
    acc[list(exclude)] = np.nan
    return {
        "aAcc": 100 * inter.sum() / area_label.sum(),
        "mIoU": 100 * np.nanmean(iou),
        "mAcc": 100 * np.nanmean(acc),
        "IoU": 100 * iou,
        "Acc": 100 * acc,
    }


@pytest.mark.parametrize("exclude", [(0,), (2, 5), (0, 1, 6)])
def test_exclusion_equals_relabelling_the_excluded_labels_as_ignored(exclude):
    rng = np.random.default_rng(7)
    K = 7
    pred = rng.integers(0, K, size=(3, 10, 12))
    label = rng.integers(0, K, size=(3, 10, 12))
    label[rng.random(label.shape) < 0.1] = IGN
    metric = SegMetric(num_classes=K)
    metric.update(torch.from_numpy(pred), torch.from_numpy(label))
    got, ref = metric.compute(exclude=exclude), _mmseg_reference(pred, label, K, set(exclude))
    for key in ("aAcc", "mIoU", "mAcc"):
        assert got[key] == pytest.approx(ref[key], rel=1e-12), key
    for key in ("IoU", "Acc"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-12)  # NaN where excluded
