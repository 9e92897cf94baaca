"""Semantic inference from a head's output: class probability x mask probability, resized."""

import torch

from segvit.modeling.output import MaskPrediction, SegOutput, semantic_inference


def test_mask_heads_combine_class_and_mask_probabilities_by_hand():
    class_logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]]])  # (B=1, Q=2, K+1=3)
    mask_logits = torch.tensor([[[[0.5]], [[-2.0]]]])  # (1, 2, 1, 1)
    scores = semantic_inference(SegOutput(class_logits, mask_logits), (2, 3))
    probs = class_logits.softmax(-1)[0, :, :2]  # no "no object"
    masks = mask_logits.sigmoid()[0, :, 0, 0]
    expected = (probs * masks[:, None]).sum(0)  # (K,)
    assert scores.shape == (1, 2, 2, 3)
    torch.testing.assert_close(scores[0, :, 1, 2], expected)


def test_pixel_heads_are_only_resized():
    logits = torch.randn(2, 4, 3, 3)
    scores = semantic_inference(SegOutput(None, logits), (6, 6))
    resized = torch.nn.functional.interpolate(logits, (6, 6), mode="bilinear")
    torch.testing.assert_close(scores, resized)


def test_predictions_list_aux_first_main_last():
    main, aux = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    out = SegOutput(None, main, aux=[MaskPrediction(None, aux)])
    assert [p.mask_logits.item() for p in out.predictions] == [1.0, 0.0]
