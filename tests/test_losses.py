"""The losses against hand computations on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from segvit.criteria import ATMCriterion
from segvit.errors import SegvitError
from segvit.losses import (
    atm_loss,
    count_target_masks,
    dice_loss,
    pixel_ce_loss,
    pixel_head_loss,
    present_classes,
    semantic_ce_loss,
    sigmoid_focal_loss,
)
from segvit.modeling.output import MaskPrediction, SegOutput

IGN = 255


def _focal_by_hand(x: float, t: float) -> float:
    p = 1 / (1 + math.exp(-x))
    ce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = 0.25 * t + 0.75 * (1 - t)
    return alpha_t * ce * (1 - p_t) ** 2


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_focal_matches_hand_values_and_skips_invalid_pixels():
    logits = torch.tensor([[2.0, -1.0, 0.5, 9.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    valid = torch.tensor([[True, True, True, False]])
    expected = sum(_focal_by_hand(x, t) for x, t in [(2.0, 1), (-1.0, 0), (0.5, 0)]) / 3
    got = sigmoid_focal_loss(logits, targets, valid)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_dice_matches_hand_values_and_skips_invalid_pixels():
    logits = torch.tensor([[0.0, 1.0, -2.0, 5.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    valid = torch.tensor([[True, True, True, False]])
    p = [_sig(0.0), _sig(1.0), _sig(-2.0)]
    inter = p[0] + p[1]
    expected = 1 - (2 * inter + 1) / (sum(p) + 2 + 1)
    assert dice_loss(logits, targets, valid).item() == pytest.approx(expected, rel=1e-6)


def _output(class_logits, mask_logits, aux=()):
    return SegOutput(class_logits, mask_logits, aux=[MaskPrediction(c, m) for c, m in aux])


def test_atm_loss_by_hand_on_one_tiny_image():
    # K = 3 classes, a 1x2 image: pixel 0 is class 1, pixel 1 ignored. Class 0 and 2 absent.
    K = 3
    labels = torch.tensor([[[1, IGN]]])
    cls = torch.tensor([[[1.0, 0.0, 0.0, 0.5], [0.2, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]]])
    masks = torch.tensor([[[[0.3, 0.1]], [[1.5, -4.0]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    out = atm_loss(_output(cls, masks), labels, num_classes=K, exclude_ignored_pixels=True)

    # Class loss: targets (no-object=3, 1, 3), weights (0.1, 1, 0.1), weighted mean.
    def ce(row, t):
        return -(row[t] - torch.logsumexp(row, 0)).item()

    terms = [(0.1, ce(cls[0, 0], 3)), (1.0, ce(cls[0, 1], 1)), (0.1, ce(cls[0, 2], 3))]
    loss_cls = sum(w * v for w, v in terms) / sum(w for w, _ in terms)
    # One target mask (class 1), only the valid pixel counts: logit 1.5, target 1.
    focal = _focal_by_hand(1.5, 1.0)
    dice = 1 - (2 * _sig(1.5) + 1) / (_sig(1.5) + 1 + 1)

    assert out["loss_cls"].item() == pytest.approx(loss_cls, rel=1e-5)
    assert out["loss_focal"].item() == pytest.approx(20.0 * focal, rel=1e-5)
    assert out["loss_dice"].item() == pytest.approx(dice, rel=1e-5)
    total = out["loss_cls"] + out["loss_focal"] + out["loss_dice"]
    assert out["loss"].item() == pytest.approx(total.item())


def test_release_mode_counts_ignored_pixels_as_background():
    labels = torch.tensor([[[1, IGN]]])
    cls = torch.zeros(1, 3, 4)
    masks = torch.tensor([[[[0.0, 0.0]], [[1.5, -4.0]], [[0.0, 0.0]]]])
    out = atm_loss(_output(cls, masks), labels, num_classes=3, exclude_ignored_pixels=False)
    focal = (_focal_by_hand(1.5, 1.0) + _focal_by_hand(-4.0, 0.0)) / 2
    assert out["loss_focal"].item() == pytest.approx(20.0 * focal, rel=1e-5)
    # The release's behaviour is the default, of atm_loss and of the criterion variants hold.
    default = atm_loss(_output(cls, masks), labels, num_classes=3)
    assert default["loss_focal"].item() == pytest.approx(20.0 * focal, rel=1e-5)
    held = ATMCriterion(3)(_output(cls, masks), labels)
    assert held["loss_focal"].item() == pytest.approx(20.0 * focal, rel=1e-5)
    excluded = ATMCriterion(3, exclude_ignored_pixels=True)(_output(cls, masks), labels)
    assert excluded["loss_focal"].item() == pytest.approx(20.0 * _focal_by_hand(1.5, 1.0), rel=1e-5)


def test_masks_are_upsampled_bilinearly_to_the_label_size():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (1, 8, 8))
    cls = torch.randn(1, 2, 3)
    masks = torch.randn(1, 2, 4, 4)
    out = atm_loss(_output(cls, masks), labels, num_classes=2)
    big = F.interpolate(masks, size=(8, 8), mode="bilinear", align_corners=False)
    ref = atm_loss(_output(cls, big), labels, num_classes=2)
    torch.testing.assert_close(out["loss"], ref["loss"])


def test_num_masks_normalises_the_mask_terms_over_the_batch():
    torch.manual_seed(0)
    labels = torch.tensor([[[0, 1], [1, 1]], [[2, 2], [2, 2]]])  # 2 masks + 1 mask
    assert count_target_masks(labels, num_classes=3).item() == 3
    present = present_classes(labels, num_classes=3)
    assert present.tolist() == [[True, True, False], [False, False, True]]
    cls, masks = torch.randn(2, 3, 4), torch.randn(2, 3, 2, 2)
    out = atm_loss(_output(cls, masks), labels, num_classes=3)
    tgt = [(0, 0), (0, 1), (1, 2)]
    focal = sum(
        sigmoid_focal_loss(
            masks[b, c].reshape(1, -1),
            (labels[b] == c).float().reshape(1, -1),
            torch.ones(1, 4, dtype=torch.bool),
        ).item()
        for b, c in tgt
    )
    assert out["loss_focal"].item() == pytest.approx(20 * focal / 3, rel=1e-5)
    # A global count (DDP) replaces the local one.
    out6 = atm_loss(_output(cls, masks), labels, num_classes=3, num_masks=6.0)
    assert out6["loss_focal"].item() == pytest.approx(out["loss_focal"].item() / 2, rel=1e-5)


def test_all_ignore_label_gives_only_the_no_object_class_loss():
    cls = torch.randn(1, 4, 5, requires_grad=True)
    masks = torch.randn(1, 4, 2, 2, requires_grad=True)
    labels = torch.full((1, 4, 4), IGN)
    out = atm_loss(_output(cls, masks), labels, num_classes=4)
    assert out["loss_focal"].item() == 0 and out["loss_dice"].item() == 0
    expected = F.cross_entropy(cls[0], torch.full((4,), 4))  # all "no object"
    assert out["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert torch.isfinite(cls.grad).all() and masks.grad.abs().sum() == 0


def test_aux_predictions_are_summed_and_gradients_reach_all_of_them():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 6, 6))
    labels[0, :2] = IGN
    preds = [
        (torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 3, 3, 3, requires_grad=True))
        for _ in range(3)
    ]
    out = atm_loss(_output(*preds[-1], aux=preds[:-1]), labels, num_classes=3)
    singles = [atm_loss(_output(c, m), labels, num_classes=3) for c, m in preds]
    for key in ("loss", "loss_cls", "loss_focal", "loss_dice"):
        assert out[key].item() == pytest.approx(sum(s[key].item() for s in singles), rel=1e-5)
    out["loss"].backward()
    for c, m in preds:
        assert c.grad is not None and c.grad.abs().sum() > 0
        assert m.grad is not None and m.grad.abs().sum() > 0


def test_atm_loss_rejects_bad_inputs():
    cls, masks = torch.randn(1, 3, 4), torch.randn(1, 3, 2, 2)
    with pytest.raises(SegvitError, match="outside"):
        atm_loss(_output(cls, masks), torch.full((1, 2, 2), 7), num_classes=3)
    with pytest.raises(SegvitError, match="queries"):
        atm_loss(_output(cls, masks), torch.zeros(1, 2, 2, dtype=torch.long), num_classes=4)
    with pytest.raises(SegvitError, match="class_logits is None"):
        atm_loss(_output(None, masks), torch.zeros(1, 2, 2, dtype=torch.long), num_classes=3)


def test_pixel_ce_averages_over_valid_pixels_or_all():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, K=2, 1, 2)
    labels = torch.tensor([[[0, 0], [IGN, 1]]])  # label 2x2: logits upsampled to 2x2
    up = F.interpolate(logits, size=(2, 2), mode="bilinear", align_corners=False)
    terms = [
        F.cross_entropy(up[0, :, y, x][None], labels[0, y, x][None]).item()
        for y, x in [(0, 0), (0, 1), (1, 1)]
    ]
    got = pixel_ce_loss(logits, labels)["loss"].item()
    assert got == pytest.approx(sum(terms) / 3, rel=1e-6)
    got_all = pixel_ce_loss(logits, labels, avg_non_ignore=False)["loss"].item()
    assert got_all == pytest.approx(sum(terms) / 4, rel=1e-6)
    empty = pixel_ce_loss(logits, torch.full((1, 2, 2), IGN))["loss"]
    assert empty.item() == 0.0


def test_pixel_head_loss_sums_aux_and_main():
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (2, 8, 8))
    main, aux = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    out = pixel_head_loss(_output(None, main, aux=[(None, aux)]), labels)
    expected = pixel_ce_loss(main, labels)["loss"] + pixel_ce_loss(aux, labels)["loss"]
    torch.testing.assert_close(out["loss"], expected)
    weighted = pixel_head_loss(_output(None, main, aux=[(None, aux)]), labels, aux_weight=0.4)
    expected = pixel_ce_loss(main, labels)["loss"] + 0.4 * pixel_ce_loss(aux, labels)["loss"]
    torch.testing.assert_close(weighted["loss"], expected)


def test_setr_mla_and_upernet_weight_their_aux_heads_as_mmseg():
    from segvit.modeling.variants import get_variant

    for name in ("setr_mla_b", "setr_mla_l", "upernet_b", "upernet_l"):
        assert get_variant(name).criterion(150).aux_weight == 0.4, name
    assert get_variant("setr_b").criterion(150).aux_weight == 1.0  # no aux heads anyway


def test_semantic_ce_uses_the_semantic_scores_as_logits():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (1, 8, 8))
    cls = torch.randn(1, 3, 4, requires_grad=True)
    masks = torch.randn(1, 3, 4, 4, requires_grad=True)
    out = semantic_ce_loss(_output(cls, masks), labels)
    prob = cls.softmax(-1)[..., :-1]
    up = F.interpolate(masks, size=(8, 8), mode="bilinear", align_corners=False).sigmoid()
    scores = torch.einsum("bqk,bqhw->bkhw", prob, up)
    torch.testing.assert_close(out["loss"], F.cross_entropy(scores, labels))
    out["loss"].backward()
    assert cls.grad.abs().sum() > 0 and masks.grad.abs().sum() > 0


def test_pixel_criteria_average_over_every_pixel_as_mmseg_0_24():
    from segvit.criteria import PixelCECriterion

    logits = torch.zeros(1, 2, 1, 2)  # uniform: each labelled pixel costs log 2
    labels = torch.tensor([[[0, IGN]]])
    out = SegOutput(None, logits)
    assert PixelCECriterion(2)(out, labels)["loss"].item() == pytest.approx(math.log(2) / 2)
    labelled = PixelCECriterion(2, avg_non_ignore=True)(out, labels)["loss"].item()
    assert labelled == pytest.approx(math.log(2))
