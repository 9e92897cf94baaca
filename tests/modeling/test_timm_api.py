"""The parts of timm that segvit relies on beyond its documented API: each test names the API
in its failure, so a new timm release that changes one says what to fix, not only where.

segvit.modeling.backbone overrides `VisionTransformer._pos_embed` (private) and walks a ViT's
(or an EVA's or BEiT's) blocks itself for query down-sampling, reaching into their
attributes by name;
segvit.modeling.weights reads `pos_embed`, `patch_embed.grid_size` and `blocks`.
"""

import inspect

import timm
import torch
from timm.models.vision_transformer import Block, VisionTransformer

from segvit.modeling.backbone import ShrunkViTBackbone, _subsample, create_vit
from segvit.modeling.specs import VIT_B, tiny

SPEC = tiny(VIT_B)
TIMM = f"timm {timm.__version__}"

# What ShrunkViTBackbone.forward and _query_downsample read, by name.
VIT_ATTRIBUTES = ("patch_embed", "patch_embed.grid_size", "pos_embed", "pos_drop", "patch_drop",
                  "norm_pre", "blocks", "norm")  # fmt: skip
BLOCK_ATTRIBUTES = ("norm1", "norm2", "attn", "ls1", "ls2", "drop_path1", "drop_path2", "mlp")
ATTENTION_ATTRIBUTES = ("num_heads", "head_dim", "qkv", "qkv.weight", "qkv.bias", "q_norm",
                        "k_norm", "attn_drop", "attn_drop.p", "proj", "proj_drop",
                        "norm")  # fmt: skip


def _lookup(module: object, dotted: str) -> object:
    for name in dotted.split("."):
        module = getattr(module, name)
    return module


def _missing(module: object, names: tuple[str, ...]) -> list[str]:
    missing = []
    for name in names:
        try:
            _lookup(module, name)
        except AttributeError:
            missing.append(name)
    return missing


def test_vision_transformer_has_the_private_pos_embed_segvit_overrides():
    method = getattr(VisionTransformer, "_pos_embed", None)
    assert callable(method), (
        f"{TIMM}: VisionTransformer._pos_embed is gone; segvit.modeling.backbone."
        "_VisionTransformer overrides it to resize position embeddings without antialiasing"
    )
    params = list(inspect.signature(method).parameters)
    assert params == ["self", "x"], (
        f"{TIMM}: VisionTransformer._pos_embed{tuple(params)} changed its signature; "
        "segvit.modeling.backbone._VisionTransformer._pos_embed(self, x) overrides it"
    )


def test_forward_intermediates_calls_pos_embed_with_the_token_grid():
    """The override assumes timm hands `_pos_embed` patch tokens as (B, h, w, C)."""
    vit = create_vit(SPEC, img_size=64).eval()
    seen = []
    override = vit._pos_embed
    vit._pos_embed = lambda x: seen.append(tuple(x.shape)) or override(x)
    vit.forward_intermediates(
        torch.randn(2, 3, 48, 80), indices=[1], norm=False, output_fmt="NCHW",
        intermediates_only=True,
    )  # fmt: skip
    assert seen == [(2, 3, 5, SPEC.dim)], (
        f"{TIMM}: VisionTransformer.forward_intermediates called _pos_embed with {seen}; "
        "segvit's override expects one call with (B, h, w, C) patch tokens "
        "(dynamic_img_size=True)"
    )


def test_forward_intermediates_takes_the_options_the_plain_backbone_passes():
    params = inspect.signature(VisionTransformer.forward_intermediates).parameters
    wanted = ("indices", "norm", "output_fmt", "intermediates_only")
    missing = [p for p in wanted if p not in params]
    assert not missing, f"{TIMM}: VisionTransformer.forward_intermediates has no {missing}"
    params = inspect.signature(VisionTransformer.prune_intermediate_layers).parameters
    assert "prune_norm" in params, (
        f"{TIMM}: VisionTransformer.prune_intermediate_layers has no prune_norm option"
    )


def test_vit_block_and_attention_attributes_segvit_reaches_into():
    vit = create_vit(SPEC, img_size=64)
    block = vit.blocks[0]
    assert isinstance(block, Block), f"{TIMM}: create_model's ViT blocks are {type(block)}"
    for owner, module, names in (
        ("VisionTransformer", vit, VIT_ATTRIBUTES),
        ("vision_transformer.Block", block, BLOCK_ATTRIBUTES),
        ("vision_transformer.Attention", block.attn, ATTENTION_ATTRIBUTES),
    ):
        missing = _missing(module, names)
        assert not missing, (
            f"{TIMM}: {owner} has no {', '.join(missing)}; segvit.modeling.backbone's "
            "query down-sampling reads them"
        )
    assert block.attn.qkv.weight.shape == (3 * SPEC.dim, SPEC.dim), (
        f"{TIMM}: Attention.qkv is no longer one fused (3C, C) projection; "
        "ShrunkViTBackbone._query_downsample splits it into q and kv"
    )


def test_block_forward_is_what_query_downsampling_recomputes():
    """With nearest queries, the QD block is the timm block on every other token: attention
    and the MLP act per query. A new step in timm's Block.forward breaks this equality."""
    torch.manual_seed(0)
    backbone = ShrunkViTBackbone(spec=SPEC, img_size=64, out_indices=(0,), qd_index=0).eval()
    block = backbone.vit.blocks[0]
    x = torch.randn(2, 16, SPEC.dim)
    with torch.no_grad():
        ours, _, grid = backbone._query_downsample(block, x, (4, 4))
        timms = _subsample(block(x), (4, 4))
    assert grid == (2, 2)
    assert torch.allclose(ours, timms, atol=1e-5, rtol=1e-5), (
        f"{TIMM}: vision_transformer.Block.forward no longer matches "
        "ShrunkViTBackbone._query_downsample's re-computation of it"
    )


# What ShrunkViTBackbone reads of the RoPE (Eva: DINOv3, EVA-02) and relative-bias (Beit:
# BEiT v2) models beyond what it reads of a ViT.
EVA_ATTRIBUTES = {
    "model": ("patch_embed", "_pos_embed", "norm_pre", "blocks", "num_prefix_tokens", "rope"),
    "block": ("norm1", "norm2", "attn", "gamma_1", "gamma_2", "drop_path1", "drop_path2", "mlp"),
    "attention": ("num_heads", "scale", "q_norm", "k_norm", "rotate_half", "attn_drop.p",
                  "norm", "gate", "proj", "proj_drop"),
}  # fmt: skip
BEIT_ATTRIBUTES = {
    "model": ("patch_embed", "patch_embed.grid_size", "cls_token", "pos_embed", "pos_drop",
              "blocks", "num_prefix_tokens", "rel_pos_bias"),
    "block": ("norm1", "norm2", "attn", "gamma_1", "gamma_2", "drop_path1", "drop_path2", "mlp"),
    "attention": ("num_heads", "scale", "qkv", "q_bias", "k_bias", "v_bias", "_get_rel_pos_bias",
                  "relative_position_bias_table", "attn_drop.p", "proj", "proj_drop"),
}  # fmt: skip


def test_eva_and_beit_attributes_query_downsampling_reaches_into():
    from dataclasses import replace

    from segvit.modeling.timm_vit import backbone_spec, create_timm_vit

    for example, wanted in (("vit_small_patch16_dinov3.lvd1689m", EVA_ATTRIBUTES),
                            ("beitv2_base_patch16_224", BEIT_ATTRIBUTES)):  # fmt: skip
        spec = replace(backbone_spec(example), dim=64, heads=2, depth=1)
        vit = create_timm_vit(spec, 32, pretrained=None)
        parts = {"model": vit, "block": vit.blocks[0], "attention": vit.blocks[0].attn}
        for part, names in wanted.items():
            missing = _missing(parts[part], names)
            assert not missing, (
                f"{TIMM}: {type(parts[part]).__name__} has no {', '.join(missing)}; "
                "segvit.modeling.backbone's query down-sampling reads them"
            )


def test_checkpoint_helpers_segvit_calls():
    assert callable(getattr(timm.models, "load_state_dict", None)), (
        f"{TIMM}: timm.models.load_state_dict is gone; segvit.modeling.weights reads with it"
    )
    assert callable(getattr(VisionTransformer, "load_pretrained", None)), (
        f"{TIMM}: VisionTransformer.load_pretrained (AugReg .npz reader) is gone"
    )
