"""mIoU, mAcc and aAcc from the confusion matrix, against hand counts and a plain loop."""

import math

import numpy as np
import pytest
import torch

from segvit.errors import SegvitError
from segvit.metrics import SegMetric

IGN = 255


def _nan_equal(a: list[float], b: list[float]) -> bool:
    return all(
        (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y)
        for x, y in zip(a, b, strict=True)
    )


def test_hand_counted_matrix_with_absent_class_ignore_and_prediction_only_class():
    # K = 4. Class 2 is absent everywhere; class 3 appears only in the prediction.
    label = torch.tensor([[0, 0, 1, 1], [1, IGN, 0, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [3, 2, 0, 0]])  # the 2 sits on an ignored pixel
    m = SegMetric(num_classes=4)
    m.update(pred, label)
    expected = torch.tensor([[2, 1, 0, 0], [1, 2, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(m.confusion, expected)

    r = m.compute()
    # IoU: class 0: 2 / (3 + 3 - 2); class 1: 2 / (4 + 3 - 2); class 2: 0/0; class 3: 0 / 1.
    iou = [100 * 2 / 4, 100 * 2 / 5, math.nan, 0.0]
    acc = [100 * 2 / 3, 100 * 2 / 4, math.nan, math.nan]
    assert _nan_equal(r["IoU"], iou) and _nan_equal(r["Acc"], acc)
    assert r["mIoU"] == pytest.approx((50 + 40 + 0) / 3)
    assert r["mAcc"] == pytest.approx((100 * 2 / 3 + 50) / 2)
    assert r["aAcc"] == pytest.approx(100 * 4 / 7)


def _reference(preds, labels, K):
    """An independent per-class loop, mmseg's intersect_and_union summed over images."""
    inter, union, area_label = np.zeros(K), np.zeros(K), np.zeros(K)
    for p, lab in zip(preds, labels, strict=True):
        keep = lab != IGN
        p, lab = p[keep], lab[keep]
        for c in range(K):
            i = np.sum((p == c) & (lab == c))
            inter[c] += i
            union[c] += np.sum(p == c) + np.sum(lab == c) - i
            area_label[c] += np.sum(lab == c)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = inter / union, inter / area_label
    return {
        "aAcc": 100 * inter.sum() / area_label.sum(),
        "mIoU": 100 * np.nanmean(iou),
        "mAcc": 100 * np.nanmean(acc),
        "IoU": list(100 * iou),
        "Acc": list(100 * acc),
    }


def test_matches_a_plain_loop_on_random_batches():
    rng = np.random.default_rng(0)
    K = 7
    preds = [rng.integers(0, K - 1, size=(2, 9, 11)) for _ in range(4)]  # class 6 never predicted
    labels = [rng.integers(0, K - 2, size=(2, 9, 11)) for _ in range(4)]  # 5, 6 never labelled
    for lab in labels:
        lab[rng.random(lab.shape) < 0.2] = IGN
    m = SegMetric(num_classes=K)
    for p, lab in zip(preds, labels, strict=True):
        m.update(torch.from_numpy(p), torch.from_numpy(lab))
    got, ref = m.compute(), _reference(preds, labels, K)
    for key in ("aAcc", "mIoU", "mAcc"):
        assert got[key] == pytest.approx(ref[key], rel=1e-12)
    assert _nan_equal(got["IoU"], ref["IoU"]) and _nan_equal(got["Acc"], ref["Acc"])
    assert math.isnan(got["IoU"][6]) and got["IoU"][5] == 0.0


def test_merging_states_equals_one_state_over_everything():
    rng = np.random.default_rng(1)
    data = [
        (torch.from_numpy(rng.integers(0, 5, (6, 6))), torch.from_numpy(rng.integers(0, 5, (6, 6))))
        for _ in range(4)
    ]
    whole, a, b = SegMetric(num_classes=5), SegMetric(num_classes=5), SegMetric(num_classes=5)
    for i, (p, lab) in enumerate(data):
        whole.update(p, lab)
        (a if i % 2 else b).update(p, lab)
    assert a.merge(b) is a
    assert torch.equal(a.confusion, whole.confusion)
    assert a.all_reduce() is a  # no process group: unchanged
    assert a.compute() == whole.compute()
    with pytest.raises(SegvitError, match="cannot merge"):
        a.merge(SegMetric(num_classes=6))


def test_59_from_60_ignores_background_labels_but_penalises_background_predictions():
    # K = 3 with class 0 as background.
    label = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([1, 0, 0, 1, 2, 2])  # bg labelled pixel predicted 1: not counted;
    m = SegMetric(num_classes=3)  # class-1 pixel predicted bg: a miss for class 1
    m.update(pred[None], label[None])
    r = m.compute(exclude=(0,))
    assert math.isnan(r["IoU"][0]) and math.isnan(r["Acc"][0])
    assert r["IoU"][1] == pytest.approx(100 * 1 / 2)  # label {2,3}, pred {3}: 1 / (2+1-1)
    assert r["IoU"][2] == pytest.approx(100.0)
    assert r["mIoU"] == pytest.approx(75.0)
    assert r["aAcc"] == pytest.approx(100 * 3 / 4)
    # Same as relabelling background to ignore while the predictions stay as they are.
    ref = SegMetric(num_classes=3)
    ref.update(pred[None], torch.where(label == 0, IGN, label)[None])
    rr = ref.compute()
    assert r["IoU"][1:] == rr["IoU"][1:] and r["aAcc"] == rr["aAcc"]


def test_empty_state_and_bad_inputs():
    r = SegMetric(num_classes=2).compute()
    assert math.isnan(r["mIoU"]) and math.isnan(r["aAcc"])
    m = SegMetric(num_classes=3)
    with pytest.raises(SegvitError, match="one shape"):
        m.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(SegvitError, match="predicted classes"):
        m.update(torch.full((2, 2), 3), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(SegvitError, match="label values"):
        m.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 9))
    with pytest.raises(SegvitError, match="integer"):
        m.update(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(SegvitError, match="exclude"):
        m.compute(exclude=(5,))
