"""Shrunk (QD inside the ViT) on every family, checked against timm's own blocks.

The reference below uses nothing of segvit's attention arithmetic: every block is timm's own
forward on the FULL token grid, with RoPE rows and relative bias as timm makes them for that
grid. Query down-sampling is then "keep every other row and column of the block's output";
a block after QD is timm's block on the full grid with the dropped tokens masked out as keys.
Because attention and the MLP act per query, that equals running the block on the kept
tokens with each one's position terms taken at its place on the full grid, which is what
ShrunkViTBackbone does (at a quarter of the cost).
"""

from dataclasses import replace

import pytest
import torch
from timm.models.beit import Beit
from timm.models.eva import Eva

from segvit.errors import SegvitError
from segvit.modeling import backbone as backbone_module
from segvit.modeling.backbone import ShrunkViTBackbone, ViTBackbone
from segvit.modeling.families import FAMILIES
from segvit.modeling.timm_vit import backbone_spec
from segvit.modeling.variants import build_model


def tiny_spec(family):
    """A 4-layer, width-64 instance of the family's example, random weights."""
    return replace(backbone_spec(family.example), dim=64, heads=2, depth=4, drop_path=0.0)


TOLERANCE = 1e-5


def _sharpened(backbone):
    """Random weights under which attention matters: timm's initial weights make every
    softmax almost uniform, and BEiT's and DINOv3's layer scale (1e-5) mutes each attention's
    output, so position terms would hardly show. Larger query/key weights, a random relative
    bias and layer scales around 1 (not 1 itself: a dropped scale must show) make a wrong
    position show."""
    with torch.no_grad():
        for name, param in backbone.vit.named_parameters():
            if name.rsplit(".", 1)[-1] in ("gamma_1", "gamma_2") or ".ls" in name:
                param.uniform_(0.5, 1.5)
        for block in backbone.vit.blocks:
            attn = block.attn
            if attn.qkv is not None:
                attn.qkv.weight[: 2 * attn.qkv.in_features] *= 2.0  # W_q and W_k
            else:  # EVA-02 B and L: separate projections
                attn.q_proj.weight *= 2.0
                attn.k_proj.weight *= 2.0
            table = getattr(attn, "relative_position_bias_table", None)
            if table is not None:
                table.normal_(std=2.0)
    return backbone


def _timm_block(vit, block, x, rope, mask):
    """timm's own block on the full grid; `mask`: additive (1, 1, L, L) or None."""
    if isinstance(vit, Eva):
        return block(x, rope=rope, attn_mask=mask)
    if isinstance(vit, Beit):
        return block(x, shared_rel_pos_bias=mask)  # added to the block's own bias
    return block(x, attn_mask=mask)


def _reference_taps(backbone, images, qkv_nearest):
    vit = backbone.vit
    x, (h, w), rope = backbone._embed(images)
    n = vit.num_prefix_tokens
    places = torch.arange(h * w).view(h, w)[::2, ::2].flatten()
    rows = torch.cat([torch.arange(n), n + places])  # the kept tokens' sequence positions
    mask = torch.full((1, 1, 1, n + h * w), float("-inf"))
    mask[..., rows] = 0.0  # keys: the kept tokens only
    taps = []
    for i, block in enumerate(vit.blocks):
        if i < backbone.qd_index:
            x = _timm_block(vit, block, x, rope, None)
        else:
            if i == backbone.qd_index:
                full = x  # QD's input: every token
                use_mask = mask if qkv_nearest else None
            else:
                full = x.new_zeros(x.shape[0], n + h * w, x.shape[2]).index_copy(1, rows, x)
                use_mask = mask
            x = _timm_block(vit, block, full, rope, use_mask)[:, rows]
        if i in backbone.out_indices:
            grid = (h, w) if i < backbone.qd_index else ((h + 1) // 2, (w + 1) // 2)
            taps.append(x[:, n:].transpose(1, 2).reshape(x.shape[0], -1, *grid))
    return taps


@pytest.mark.parametrize("mode", ["q_nearest", "qkv_nearest"])
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_shrunk_taps_equal_timms_blocks_on_the_full_grid(family, mode):
    torch.manual_seed(0)
    spec = tiny_spec(family)
    crop = 5 * spec.patch_size  # an odd 5 x 5 grid: QD keeps rows and columns 0, 2, 4
    backbone = ShrunkViTBackbone(
        spec=spec, img_size=crop, out_indices=(0, 3), qd_index=1, qd_mode=mode
    )
    backbone = _sharpened(backbone).eval()
    images = torch.randn(2, 3, crop, crop)
    with torch.no_grad():
        ours = backbone(images)
        expected = _reference_taps(backbone, images, qkv_nearest=mode == "qkv_nearest")
        plain = ViTBackbone(spec=spec, img_size=crop, out_indices=(0,)).eval()
        plain.load_state_dict(backbone.state_dict(), strict=False)
        before_qd = plain(images)[0]  # timm's forward_intermediates: the embedding is timm's
    assert [t.shape for t in ours] == [(2, 64, 5, 5), (2, 64, 3, 3)]
    torch.testing.assert_close(ours[0], before_qd, rtol=1e-5, atol=1e-5)
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("key", ["dinov3", "eva02", "beitv2"])
def test_the_check_catches_position_terms_taken_at_the_wrong_places(key, monkeypatch):
    """The reference is sharp: position terms taken for the first h*w/4 places (what a port
    that forgets where the kept tokens sit would do) move the taps far past its tolerance."""
    torch.manual_seed(0)
    spec = tiny_spec(next(f for f in FAMILIES if f.key == key))
    crop = 5 * spec.patch_size
    backbone = _sharpened(ShrunkViTBackbone(spec=spec, img_size=crop, out_indices=(3,), qd_index=1))
    images = torch.randn(1, 3, crop, crop)
    wrong = lambda grid, device: torch.arange(((grid[0] + 1) // 2) * ((grid[1] + 1) // 2))  # noqa: E731
    monkeypatch.setattr(backbone_module, "_every_other", wrong)
    with torch.no_grad():
        ours = backbone.eval()(images)[0]
        expected = _reference_taps(backbone, images, qkv_nearest=False)[0]
    assert (ours - expected).abs().max() > 10 * TOLERANCE, (ours - expected).abs().max()


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_each_family_builds_all_three_structures_trains_a_step_and_counts_flops(family):
    from segvit.analysis.flops import count_flops

    torch.manual_seed(0)
    name = None if family.key == "augreg" else family.example
    crop = 64
    backbone_gflops = {}
    for variant in ("segvit", "atm_single", "segvit_shrunk"):
        model = build_model(variant, num_classes=3, crop=crop, tiny=True, backbone=name)
        output = model(torch.randn(2, 3, crop, crop))
        loss = sum(p.mask_logits.mean() + p.class_logits.mean() for p in output.predictions)
        loss.backward()
        missing = [k for k, p in model.backbone.named_parameters() if p.grad is None]
        assert not missing, (family.key, variant, missing)  # every weight reaches the loss
        with torch.no_grad():
            scores = model.eval().predict(torch.randn(1, 3, crop, crop))
        assert scores.shape == (1, 3, crop, crop), (family.key, variant)
        backbone_gflops[variant] = count_flops(model).backbone_gflops
    assert model.backbone.qd_index == model.backbone.out_indices[0] + 1  # QD after the first
    # The blocks after QD run on a quarter of the tokens: the backbone costs less.
    assert 0 < backbone_gflops["segvit_shrunk"] < backbone_gflops["segvit"], backbone_gflops


@pytest.mark.parametrize("mode", ["q_conv"])
@pytest.mark.parametrize("key", ["dinov3", "beitv2"])
def test_learned_query_convolution_runs_on_rope_and_bias_families(key, mode):
    torch.manual_seed(0)
    spec = tiny_spec(next(f for f in FAMILIES if f.key == key))
    backbone = ShrunkViTBackbone(
        spec=spec, img_size=64, out_indices=(0, 3), qd_index=1, qd_mode=mode
    )
    before, after = backbone(torch.randn(1, 3, 64, 64))
    assert before.shape == (1, 64, 4, 4) and after.shape == (1, 64, 2, 2)
    after.sum().backward()
    assert backbone.qd_conv.weight.grad is not None


def test_a_block_layout_qd_does_not_know_is_one_line(monkeypatch):
    """QD recomputes a pre-norm block; any other layout (a future timm block) is refused by
    name rather than computed wrongly."""
    monkeypatch.setattr(backbone_module, "_PRE_NORM", ())
    with pytest.raises(SegvitError, match=r"Shrunk \(QD\) is not built on its EvaBlock blocks"):
        build_model("segvit_shrunk", num_classes=3, crop=56, tiny=True,
                    backbone="eva02_tiny_patch14_224")  # fmt: skip


def test_the_attention_arithmetic_is_timms_with_its_optional_parts_on():
    """No supported family's weights use query/key norms, a scale norm or a gated attention,
    but timm's attentions have them; QD's re-computation must too, or refuse. Each attention
    here has every option on, and QD's arithmetic over all tokens equals timm's forward."""
    from types import SimpleNamespace

    from timm.layers import RotaryEmbeddingCat
    from timm.models.eva import EvaAttention
    from timm.models.vision_transformer import Attention

    torch.manual_seed(0)
    n, grid, dim = 1, (3, 4), 32
    y = torch.randn(2, n + grid[0] * grid[1], dim)
    rope = RotaryEmbeddingCat(dim // 2, in_pixels=False, feat_shape=list(grid)).get_embed()
    norm = torch.nn.LayerNorm
    vit = Attention(dim, num_heads=2, qkv_bias=True, qk_norm=True, scale_norm=True,
                    norm_layer=norm)  # fmt: skip
    eva = EvaAttention(dim, num_heads=2, qkv_fused=False, num_prefix_tokens=n, qk_norm=True,
                       scale_norm=True, gated=True, rotate_half=True, norm_layer=norm)  # fmt: skip
    host = SimpleNamespace(vit=SimpleNamespace(num_prefix_tokens=n), training=False)
    with torch.no_grad():
        for module in (vit, eva):
            for param in module.parameters():
                param.normal_(std=0.3)  # norms' weights included: none is the identity
        ours_vit = ShrunkViTBackbone._attend(host, vit.eval(), y, y, None, None, None)
        ours_eva = ShrunkViTBackbone._attend(host, eva.eval(), y, y, None, None, rope)
        torch.testing.assert_close(ours_vit, vit(y), rtol=TOLERANCE, atol=TOLERANCE)
        torch.testing.assert_close(ours_eva, eva(y, rope=rope), rtol=TOLERANCE, atol=TOLERANCE)
