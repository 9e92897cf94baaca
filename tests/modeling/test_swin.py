"""Swin backbone: stage strides and widths, pruned stages, per-stage norms, odd sizes."""

import torch

from segvit.modeling.specs import SWIN_T, tiny
from segvit.modeling.swin import SwinBackbone

SPEC = tiny(SWIN_T)


def test_swin_t_matches_the_paper_sizes():
    assert SWIN_T.dims == (96, 192, 384, 768)
    assert SWIN_T.depths == (2, 2, 6, 2) and SWIN_T.heads == (3, 6, 12, 24)
    assert SWIN_T.window == 7
    assert SWIN_T.hub_name == "swin_tiny_patch4_window7_224.ms_in1k"


def test_tiny_keeps_the_stages_and_halves_the_width():
    assert SPEC.dims == (48, 96, 192, 384)
    assert SPEC.heads == SWIN_T.heads and SPEC.pretrained_tag == ""


def test_four_stages_at_strides_4_to_32():
    backbone = SwinBackbone(spec=SPEC, img_size=64).eval()
    assert backbone.out_dims == (48, 96, 192, 384)
    maps = backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [
        (2, 48, 16, 16),
        (2, 96, 8, 8),
        (2, 192, 4, 4),
        (2, 384, 2, 2),
    ]


def test_stages_after_the_last_tap_are_not_built():
    backbone = SwinBackbone(spec=SPEC, img_size=64, out_indices=(0, 1))
    assert len(backbone.swin.layers) == 2
    assert backbone.out_dims == (48, 96)
    assert len(backbone(torch.randn(1, 3, 64, 64))) == 2


def test_each_output_has_its_own_layer_norm():
    """At init (weight 1, bias 0) every position of every stage is standardised over C."""
    backbone = SwinBackbone(spec=SPEC, img_size=64).eval()
    for m in backbone(torch.randn(1, 3, 64, 64)):
        torch.testing.assert_close(m.mean(1), torch.zeros_like(m[:, 0]), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            m.var(1, unbiased=False), torch.ones_like(m[:, 0]), atol=1e-3, rtol=0
        )


def test_sizes_that_are_not_window_multiples_are_padded():
    """A 96 crop gives a 24x24 stage-1 map, not a multiple of the 7-token window."""
    backbone = SwinBackbone(spec=SPEC, img_size=64).eval()
    maps = backbone(torch.randn(1, 3, 96, 96))
    assert [m.shape[-1] for m in maps] == [24, 12, 6, 3]
    assert all(torch.isfinite(m).all() for m in maps)
