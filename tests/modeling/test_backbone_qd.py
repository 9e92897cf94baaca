"""Query down-sampling (QD) of the Shrunk ViT: Table 7's Q+K+V row by hand, and odd token
grids (whole-image inference of any size) kept to ceil(h/2) x ceil(w/2)."""

import torch
import torch.nn.functional as F

from segvit.modeling.backbone import ShrunkViTBackbone
from segvit.modeling.specs import VIT_B, tiny

SPEC = tiny(VIT_B)  # width 192, 3 heads of 64


def test_qkv_nearest_takes_keys_and_values_from_the_subsampled_tokens_too():
    torch.manual_seed(0)
    backbone = ShrunkViTBackbone(
        spec=SPEC, img_size=64, out_indices=(0,), qd_index=0, qd_mode="qkv_nearest"
    ).eval()
    block = backbone.vit.blocks[0]
    x = torch.randn(1, 16, 192)
    out, kept, grid = backbone._query_downsample(block, x, (4, 4))

    keep = torch.tensor([0, 2, 8, 10])  # rows 0, 2 and columns 0, 2 of the 4x4 grid
    y = block.norm1(x)[:, keep]  # queries, keys and values all from these 4 tokens
    qkv = F.linear(y, block.attn.qkv.weight, block.attn.qkv.bias).view(1, 4, 3, 3, 64)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (1, heads, 4, 64)
    weights = (q @ k.transpose(-2, -1) / 8.0).softmax(-1)
    expected = x[:, keep] + block.attn.proj((weights @ v).transpose(1, 2).reshape(1, 4, 192))
    expected = expected + block.mlp(block.norm2(expected))
    assert grid == (2, 2) and kept.tolist() == keep.tolist()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_an_odd_token_grid_keeps_its_last_row_and_column():
    # A 48 x 80 image is a 3 x 5 token grid at 1/16; every other row and column from the
    # first gives 2 x 3 at 1/32 (rows 0, 2; columns 0, 2, 4).
    torch.manual_seed(0)
    backbone = ShrunkViTBackbone(spec=SPEC, img_size=64, out_indices=(0, 2), qd_index=1).eval()
    before, after = backbone(torch.randn(1, 3, 48, 80))
    assert before.shape == (1, 192, 3, 5)
    assert after.shape == (1, 192, 2, 3)
    block = backbone.vit.blocks[1]
    tokens = before.flatten(2).transpose(1, 2)  # (1, 15, 192): block 0's output
    subsampled, kept, grid = backbone._query_downsample(block, tokens, (3, 5))
    assert grid == (2, 3) and subsampled.shape == (1, 6, 192)
    assert kept.tolist() == [0, 2, 4, 10, 12, 14]  # rows 0, 2 of 5 columns
