"""Plain and Shrunk ViT backbones: taps, token counts, the QD block against a hand version."""

import pytest
import torch
import torch.nn.functional as F

from segvit.modeling.backbone import VIT_B, ShrunkViTBackbone, ViTBackbone, tiny

SPEC = tiny(VIT_B)


def test_plain_backbone_taps_and_no_class_token():
    backbone = ViTBackbone(spec=SPEC, img_size=64, out_indices=(5, 7, 11)).eval()
    assert backbone.vit.cls_token is None
    assert backbone.vit.pos_embed.shape == (1, 16, 192)  # 4x4 grid, no prefix token
    feats = backbone(torch.randn(2, 3, 64, 64))
    assert [f.shape for f in feats] == [torch.Size([2, 192, 4, 4])] * 3


def test_layers_after_the_last_tap_are_not_built():
    backbone = ViTBackbone(spec=SPEC, img_size=64, out_indices=(2, 5))
    assert len(backbone.vit.blocks) == 6


@pytest.mark.parametrize("mode", ["q_nearest", "qkv_nearest", "q_conv"])
def test_qd_quarters_the_tokens(mode):
    backbone = ShrunkViTBackbone(
        spec=SPEC, img_size=128, out_indices=(5, 11), qd_index=6, qd_mode=mode
    ).eval()
    before, after = backbone(torch.randn(1, 3, 128, 128))
    assert before.shape == (1, 192, 8, 8)  # 64 tokens at 1/16
    assert after.shape == (1, 192, 4, 4)  # 16 tokens at 1/32: a quarter


def test_qd_block_matches_a_hand_computation():
    """Queries: every other token of the normed grid; keys/values: all; residual: subsampled."""
    torch.manual_seed(0)
    backbone = ShrunkViTBackbone(spec=SPEC, img_size=64, out_indices=(0,), qd_index=0).eval()
    block = backbone.vit.blocks[0]
    x = torch.randn(1, 16, 192)
    out, grid = backbone._query_downsample(block, x, (4, 4))

    y = block.norm1(x)
    keep = torch.tensor([0, 2, 8, 10])  # rows 0, 2 and columns 0, 2 of a 4x4 grid
    qkv = F.linear(y, block.attn.qkv.weight, block.attn.qkv.bias).view(1, 16, 3, 3, 64)
    q = qkv[:, keep, 0].transpose(1, 2)  # (1, heads, 4, 64)
    k, v = qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
    weights = (q @ k.transpose(-2, -1) / 8.0).softmax(-1)
    attended = block.attn.proj((weights @ v).transpose(1, 2).reshape(1, 4, 192))
    expected = x[:, keep] + attended
    expected = expected + block.mlp(block.norm2(expected))
    assert grid == (2, 2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_qd_index_must_be_tapped_or_before():
    with pytest.raises(ValueError, match="qd_index 9"):
        ShrunkViTBackbone(spec=SPEC, img_size=64, out_indices=(5,), qd_index=9)
