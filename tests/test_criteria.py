"""The criteria a variant trains with: how each weighs its auxiliary predictions, by hand.

Uniform logits make every term a logarithm: K equal pixel scores cost log K per labelled
pixel, so the expected losses are sums of log 2 and log 3 with the weights in front.
"""

import math

import pytest
import torch

from segvit.criteria import PixelCECriterion, SemanticCECriterion
from segvit.modeling.output import MaskPrediction, SegOutput

IGN = 255


def _pixel_output(main: torch.Tensor, *aux: torch.Tensor) -> SegOutput:
    return SegOutput(None, main, aux=[MaskPrediction(None, a) for a in aux])


def _confident(num_classes: int, label: int, margin: float) -> torch.Tensor:
    """(1, K, 1, 1) scores with `margin` on `label`: CE log(1 + (K-1) e^-margin) per pixel."""
    scores = torch.zeros(1, num_classes, 1, 1)
    scores[0, label] = margin
    return scores


def test_pixel_criterion_weights_each_aux_prediction_and_not_the_main():
    labels = torch.tensor([[[0, 0]]])  # two pixels of class 0 (K = 3)
    main = torch.zeros(1, 3, 1, 1)  # uniform: log 3 per pixel
    aux_a = _confident(3, 0, math.log(2))  # log(1 + 2 / 2) = log 2 per pixel
    aux_b = _confident(3, 0, math.log(4))  # log(1 + 2 / 4) = log 1.5 per pixel
    out = _pixel_output(main, aux_a, aux_b)
    weighted = PixelCECriterion(3, aux_weight=0.4)(out, labels)["loss"].item()
    assert weighted == pytest.approx(math.log(3) + 0.4 * (math.log(2) + math.log(1.5)))
    # The default weighs every prediction 1, as the release's SETR-naive configs do.
    plain = PixelCECriterion(3)(out, labels)["loss"].item()
    assert plain == pytest.approx(math.log(3) + math.log(2) + math.log(1.5))


def test_pixel_criterion_without_aux_is_the_main_term_alone_whatever_the_aux_weight():
    labels = torch.tensor([[[1, 1]]])
    out = _pixel_output(torch.zeros(1, 2, 1, 1))  # log 2 per pixel
    for aux_weight in (0.0, 0.4, 1.0):
        loss = PixelCECriterion(2, aux_weight=aux_weight)(out, labels)["loss"].item()
        assert loss == pytest.approx(math.log(2))


def test_pixel_criterion_weight_follows_the_aux_prediction_not_its_position():
    # Swapping which prediction is main changes the loss: the main one is never scaled.
    labels = torch.tensor([[[0]]])
    uniform, sure = torch.zeros(1, 2, 1, 1), _confident(2, 0, math.log(3))  # log 2, log 4/3
    main_uniform = PixelCECriterion(2, aux_weight=0.5)(_pixel_output(uniform, sure), labels)
    main_sure = PixelCECriterion(2, aux_weight=0.5)(_pixel_output(sure, uniform), labels)
    assert main_uniform["loss"].item() == pytest.approx(math.log(2) + 0.5 * math.log(4 / 3))
    assert main_sure["loss"].item() == pytest.approx(math.log(4 / 3) + 0.5 * math.log(2))


def test_semantic_criterion_sums_aux_and_main_unweighted_over_every_pixel():
    # Zero class logits and masks: every class scores 1/(K+1) * sigmoid(0), equal scores,
    # so each labelled pixel costs log K; the mean runs over all pixels (ignored ones 0).
    K = 3
    labels = torch.tensor([[[2, IGN]]])
    pred = (torch.zeros(1, K, K + 1), torch.zeros(1, K, 1, 2))
    one = SegOutput(*pred)
    three = SegOutput(*pred, aux=[MaskPrediction(*pred), MaskPrediction(*pred)])
    assert SemanticCECriterion(K)(one, labels)["loss"].item() == pytest.approx(math.log(3) / 2)
    assert SemanticCECriterion(K)(three, labels)["loss"].item() == pytest.approx(
        3 * math.log(3) / 2
    )
    labelled = SemanticCECriterion(K, avg_non_ignore=True)(one, labels)["loss"].item()
    assert labelled == pytest.approx(math.log(3))


def test_pixel_scores_are_upsampled_as_mmseg_resizes_them():
    # mmseg's resize: bilinear, align_corners False. A 2x2 map to 4x4 differs between the two
    # corner rules at every pixel but the corners, so the loss tells them apart.
    torch.manual_seed(0)
    scores = torch.randn(1, 3, 2, 2)
    labels = torch.randint(0, 3, (1, 4, 4))

    def ce(align_corners: bool) -> float:
        up = torch.nn.functional.interpolate(
            scores, size=(4, 4), mode="bilinear", align_corners=align_corners
        )
        return torch.nn.functional.cross_entropy(up, labels).item()

    got = PixelCECriterion(3)(_pixel_output(scores), labels)["loss"].item()
    assert got == pytest.approx(ce(False), rel=1e-6)
    assert got != pytest.approx(ce(True), rel=1e-3)
