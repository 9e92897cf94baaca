"""Every variant builds, predicts the right shapes and trains every parameter (tiny, CPU)."""

import pytest
import torch
from timm.layers import DropPath

from segvit.criteria import PixelCECriterion
from segvit.data.catalog import get_dataset
from segvit.errors import SegvitError
from segvit.experiments.spec import resolve
from segvit.modeling.output import SegOutput
from segvit.modeling.peers import PEER_VARIANTS
from segvit.modeling.variants import VARIANTS, build_model

CROP = 64  # 4x4 tokens at 1/16, 2x2 at 1/32
SEGVIT = sorted(set(VARIANTS) - set(PEER_VARIANTS))  # the peers have tests/modeling/test_peers.py


def tiny_model(variant: str, dataset: str = "demo"):
    torch.manual_seed(0)
    return build_model(variant, num_classes=get_dataset(dataset).num_classes, crop=CROP, tiny=True)


def _expected_mask_grid(variant: str) -> int:
    return 2 if variant == "naive_shrunk_b" else 4  # naive Shrunk masks stay at 1/32


@pytest.mark.parametrize("variant", SEGVIT)
def test_output_shapes(variant):
    model = tiny_model(variant)
    K = model.meta.num_classes
    images = torch.randn(2, 3, CROP, CROP)
    out = model(images)
    assert isinstance(out, SegOutput)
    grid = _expected_mask_grid(variant)
    if VARIANTS[variant].criterion is PixelCECriterion:
        assert out.class_logits is None
        assert out.mask_logits.shape == (2, K, grid, grid)
    else:
        assert out.class_logits.shape == (2, K, K + 1)
        assert out.mask_logits.shape == (2, K, grid, grid)
        for aux in out.aux:
            assert aux.class_logits.shape == (2, K, K + 1)
            assert aux.mask_logits.shape == (2, K, grid, grid)
    model.eval()
    scores = model.predict(images)
    assert scores.shape == (2, K, CROP, CROP)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize(
    "variant, num_predictions",
    [("segvit_b", 3), ("segvit_b_l3_6_9_12", 4), ("atm_single_b", 3), ("segvit_shrunk_b", 3)],
)
def test_predictions_per_stage(variant, num_predictions):
    """Cascade: one mask per tapped layer; single and QU heads: one per decoder layer."""
    out = tiny_model(variant)(torch.randn(1, 3, CROP, CROP))
    assert len(out.predictions) == num_predictions


@pytest.mark.parametrize("variant", SEGVIT)
def test_every_parameter_gets_a_gradient(variant):
    model = tiny_model(variant)
    model.train()
    for module in model.modules():  # stochastic depth would drop whole branches at random
        if isinstance(module, DropPath):
            module.eval()
    out = model(torch.randn(2, 3, CROP, CROP))
    loss = sum(
        p.mask_logits.float().pow(2).mean()
        + (p.class_logits.float().pow(2).mean() if p.class_logits is not None else 0)
        for p in out.predictions
    )
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient reaches {missing}"


def test_cascade_masks_are_cumulative():
    """Stage k's mask is the sum of the similarity maps of stages 1..k."""
    model = tiny_model("segvit_b").eval()
    maps = []
    for decoder in model.head.decoders:
        layer = decoder.layers[-1].cross_attn
        layer.register_forward_hook(lambda m, i, o: maps.append(o[1]))
    out = model(torch.randn(1, 3, CROP, CROP))
    stage = [m.unflatten(2, (4, 4)) for m in maps]
    torch.testing.assert_close(out.aux[0].mask_logits, stage[0])
    torch.testing.assert_close(out.aux[1].mask_logits, stage[0] + stage[1])
    torch.testing.assert_close(out.mask_logits, stage[0] + stage[1] + stage[2])


def test_qu_masks_are_not_cumulative():
    model = tiny_model("segvit_shrunk_b").eval()
    maps = []
    for layer in model.head.atm.decoders[0].layers:
        layer.cross_attn.register_forward_hook(lambda m, i, o: maps.append(o[1]))
    out = model(torch.randn(1, 3, CROP, CROP))
    for pred, sim in zip(out.predictions, maps, strict=True):
        torch.testing.assert_close(pred.mask_logits, sim.unflatten(2, (4, 4)))


def test_dataset_sets_classes_and_crop():
    assert resolve("segvit_b", "ade20k").crop == 512
    assert resolve("segvit_l", "ade20k").crop == 640
    assert resolve("segvit_l", "coco-stuff-10k").crop == 512
    assert resolve("segvit_shrunk_l", "pascal-context").crop == 480
    experiment = resolve("setr_b", "pascal-context-59", crop=64)
    assert experiment.dataset.num_classes == 59
    model = build_model("setr_b", num_classes=59, crop=64, tiny=True)
    assert model.meta.num_classes == 59


def test_unknown_variant_lists_the_valid_ones():
    with pytest.raises(SegvitError, match="unknown variant 'segvit_x'.*segvit_b.*setr_b"):
        build_model("segvit_x", num_classes=8, crop=64)


def test_unknown_dataset_is_named():
    with pytest.raises(SegvitError, match="unknown dataset 'ade'"):
        resolve("segvit_b", "ade")


@pytest.mark.parametrize("crop", [500, 0, -16])
def test_crop_must_be_a_multiple_of_16(crop):
    with pytest.raises(SegvitError, match=f"--crop {crop}: expected a positive multiple of 16"):
        build_model("segvit_b", num_classes=8, crop=crop, tiny=True)


def test_every_peer_row_is_a_variant_with_its_criterion():
    for name, (description, spec, _, criterion) in PEER_VARIANTS.items():
        variant = VARIANTS[name]
        assert (variant.description, variant.spec, variant.criterion) == (
            description,
            spec,
            criterion,
        )
