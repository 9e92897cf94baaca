"""Plain and Shrunk ViT backbones: taps, token counts, the QD block against a hand version,
position embeddings resized as mmsegmentation resizes them (no antialiasing)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

from segvit.modeling.backbone import ShrunkViTBackbone, ViTBackbone, resize_pos_embed
from segvit.modeling.specs import VIT_B, tiny

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
    out, kept, grid = backbone._query_downsample(block, x, (4, 4))

    y = block.norm1(x)
    keep = torch.tensor([0, 2, 8, 10])  # rows 0, 2 and columns 0, 2 of a 4x4 grid
    qkv = F.linear(y, block.attn.qkv.weight, block.attn.qkv.bias).view(1, 16, 3, 3, 64)
    q = qkv[:, keep, 0].transpose(1, 2)  # (1, heads, 4, 64)
    k, v = qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
    weights = (q @ k.transpose(-2, -1) / 8.0).softmax(-1)
    attended = block.attn.proj((weights @ v).transpose(1, 2).reshape(1, 4, 192))
    expected = x[:, keep] + attended
    expected = expected + block.mlp(block.norm2(expected))
    assert grid == (2, 2) and kept.tolist() == keep.tolist()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_qd_index_must_be_tapped_or_before():
    with pytest.raises(ValueError, match="qd_index 9"):
        ShrunkViTBackbone(spec=SPEC, img_size=64, out_indices=(5,), qd_index=9)


def _bicubic(pos, old, new, *, antialias):
    grid = pos.reshape(1, *old, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=new, mode="bicubic", align_corners=False, antialias=antialias)
    return out.flatten(2).transpose(1, 2)


def test_resize_pos_embed_is_bicubic_without_antialiasing():
    torch.manual_seed(0)
    pos = torch.randn(1, 24 * 24, 32)
    got = resize_pos_embed(pos, (24, 24), (32, 32))
    assert got.shape == (1, 32 * 32, 32)
    torch.testing.assert_close(got, _bicubic(pos, (24, 24), (32, 32), antialias=False))
    # timm's default (antialiased) is another kernel even when enlarging.
    timm_default = resample_abs_pos_embed(pos, new_size=[32, 32], num_prefix_tokens=0)
    torch.testing.assert_close(timm_default, _bicubic(pos, (24, 24), (32, 32), antialias=True))
    assert (got - timm_default).abs().max() > 0.05 * pos.abs().max()
    assert resize_pos_embed(pos, (24, 24), (24, 24)) is pos


def test_resize_pos_embed_refuses_a_wrong_grid():
    with pytest.raises(ValueError, match="do not fill a"):
        resize_pos_embed(torch.zeros(1, 10, 4), (3, 3), (4, 4))


@pytest.mark.parametrize("shrunk", [False, True])
def test_other_input_sizes_get_unantialiased_position_embeddings(shrunk):
    """A 64 px model (4x4 grid) fed 96 px (6x6): the embeddings are resized as mmseg does."""
    torch.manual_seed(0)
    kwargs = {"spec": SPEC, "img_size": 64, "out_indices": (5, 11)}
    backbone = ShrunkViTBackbone(**kwargs, qd_index=6) if shrunk else ViTBackbone(**kwargs)
    vit = backbone.eval().vit
    with torch.no_grad():
        vit.pos_embed.normal_()  # unit scale, as the tolerances below
    tokens = vit.patch_embed(torch.randn(1, 3, 96, 96))  # (1, 6, 6, C)
    pos = vit.pos_embed.detach()
    expected = tokens.flatten(1, 2) + _bicubic(pos, (4, 4), (6, 6), antialias=False)
    torch.testing.assert_close(vit._pos_embed(tokens), expected)
    timm_default = VisionTransformer._pos_embed(vit, tokens)  # antialiased
    assert (timm_default - expected).abs().max() > 0.1
    assert [f.shape[-1] for f in backbone(torch.randn(1, 3, 96, 96))] == (
        [6, 3] if shrunk else [6, 6]
    )


def test_the_resize_survives_copies():
    backbone = ViTBackbone(spec=SPEC, img_size=64, out_indices=(0,))
    clone = copy.deepcopy(backbone)
    assert type(clone.vit)._pos_embed is type(backbone.vit)._pos_embed
    assert type(backbone.vit)._pos_embed is not VisionTransformer._pos_embed
