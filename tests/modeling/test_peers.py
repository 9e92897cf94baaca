"""Peer heads: every row builds, predicts, trains every parameter and learns (tiny, CPU);
each design's defining computation is checked against a hand version."""

import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from segvit.criteria import ATMCriterion, PixelCECriterion
from segvit.modeling.output import SegOutput
from segvit.modeling.peers import PEER_VARIANTS
from segvit.modeling.peers.layers import ClassTokenViTBackbone
from segvit.modeling.peers.mask2former import MSDeformAttn
from segvit.modeling.peers.maskformer import sine_positions
from segvit.modeling.specs import VIT_B, tiny

CROP, K = 32, 5  # ViT: 2x2 tokens at 1/16
# Swin needs 2x2 at 1/32: on a single token its attention, relative position bias and the
# deepest ATM decoder's keys would have nothing to learn.
CROP_SWIN = 64

# Stride of the main prediction: where each design makes its logits.
STRIDE = {
    "setr_mla": 4,  # four levels upsampled 4x
    "segmenter": 16,  # patch tokens
    "dpt": 2,  # four fusion blocks up from 1/32
    "upernet": 4,  # the finest MLN level
    "maskformer_swin": 4,  # FPN down to the 1/4 stage
    "mask2former_swin": 4,
    "maskformer": 16,  # FPN over same-resolution ViT layers
    "segvit_dot": 16,
    "segvit_swin": 4,  # the shallowest Swin stage comes last in the cascade
}
# The ViT-L rows share their builder and head with the ViT-B rows (deeper taps, other widths).
LARGE = {name for name in PEER_VARIANTS if name.endswith("_l")}
ROWS = [
    pytest.param(name, marks=pytest.mark.slow) if name in LARGE else name
    for name in sorted(PEER_VARIANTS)
]


def _crop(name: str) -> int:
    return CROP_SWIN if "swin" in name else CROP


def _grid(name: str) -> int:
    stride = next(s for prefix, s in STRIDE.items() if name.startswith(prefix))
    return _crop(name) // stride


def _loss(name: str, out: SegOutput, labels: torch.Tensor) -> torch.Tensor:
    return PEER_VARIANTS[name][3](K)(out, labels)["loss"]  # the row's own criterion


def _batch(crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two images whose labels are 16x16 blocks of K classes: learnable from the pixels."""
    g = torch.Generator().manual_seed(0)
    blocks = crop // 16
    labels = torch.randint(0, K, (2, blocks, blocks), generator=g).repeat_interleave(16, 1)
    labels = labels.repeat_interleave(16, 2)  # (2, crop, crop)
    images = torch.randn(2, 3, crop, crop, generator=g) * 0.1 + labels[:, None].float()
    return images, labels


# DETR starts its queries from zero content, so the first self-attention's values are its bias
# alone and the value weight gets no gradient, in MaskFormer as here.
# Deformable attention starts with zero offset and weight projections (Deformable DETR), so
# the positions added to its queries (the level embeddings) get gradients from the second step.
NO_GRADIENT = {
    "maskformer_b": {"head.layers.0.self_attn.v.weight"},
    "maskformer_swin_t": {"head.layers.0.self_attn.v.weight"},
    "mask2former_swin_t": {"head.pixel_decoder.level_embed"},
}


def _no_drop_path(model: nn.Module) -> None:
    for module in model.modules():  # stochastic depth would drop whole branches at random
        if isinstance(module, DropPath):
            module.eval()


def test_table_rows_are_well_formed():
    for name, (description, spec, build, loss) in PEER_VARIANTS.items():
        assert description and spec.label and callable(build), name
        assert isinstance(loss(K), ATMCriterion | PixelCECriterion), name


@pytest.mark.parametrize("name", ROWS)
def test_shapes_gradients_and_no_nan(name, build_peer):
    model = build_peer(name, num_classes=K, crop=_crop(name), tiny=True).train()
    _no_drop_path(model)
    images, labels = _batch(_crop(name))
    out = model(images)
    grid = _grid(name)
    assert out.mask_logits.shape[-2:] == (grid, grid)
    if PEER_VARIANTS[name][3] is ATMCriterion:
        assert out.class_logits.shape == (2, K, K + 1)
        assert out.mask_logits.shape[:2] == (2, K)
    else:
        assert out.class_logits is None
        assert out.mask_logits.shape[:2] == (2, K)
    for pred in out.predictions:
        assert torch.isfinite(pred.mask_logits).all()
    _loss(name, out, labels).backward()
    missing = {n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()}
    assert missing == NO_GRADIENT.get(name, set()), f"no gradient reaches {missing}"

    model.eval()
    with torch.no_grad():
        scores = model.predict(images)
    assert scores.shape == (2, K, _crop(name), _crop(name))
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", ROWS)
def test_a_few_steps_reduce_the_loss(name, build_peer):
    model = build_peer(name, num_classes=K, crop=_crop(name), tiny=True).train()
    images, labels = _batch(_crop(name))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(8):
        torch.manual_seed(1)  # the same dropout and drop-path draws at every step
        loss = _loss(name, model(images), labels)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Eight steps of AdamW on one batch; tiny mask-classification heads oscillate on the way
    # down under the release's all-pixel mask loss, so the best of the last three is compared.
    assert min(losses[-3:]) < 0.9 * losses[0], losses


# ---- the defining computation of each design ----


def test_setr_mla_sums_levels_top_down(build_peer):
    """Before its 3x3 convs, MLA level i is the sum of the projections of taps i..deepest."""
    neck = build_peer("setr_mla_b", num_classes=K, crop=CROP, tiny=True).head.neck.eval()
    laterals, sums = [], []
    for lateral, refine in zip(neck.lateral, neck.refine, strict=True):
        lateral.register_forward_hook(lambda m, i, o: laterals.append(o))
        refine.register_forward_hook(lambda m, i, o: sums.append(i[0]))
    neck([torch.randn(1, 192, 4, 4) for _ in range(4)])
    for i in range(4):
        torch.testing.assert_close(sums[i], sum(laterals[i:]))


def test_segmenter_masks_are_normalised_cosine_similarities(build_peer):
    model = build_peer("segmenter_b", num_classes=K, crop=64, tiny=True).eval()
    head = model.head
    seen = {}
    head.mask_norm.register_forward_hook(lambda m, i, o: seen.update(cos=i[0]))
    out = model(torch.randn(2, 3, 64, 64))
    cos = seen["cos"]  # (B, L, K): unit patch embeddings . unit class embeddings
    assert cos.shape == (2, 16, K)
    assert cos.abs().max() <= 1 + 1e-5
    # The mask norm (weight 1, bias 0 at init) standardises over the classes at each pixel.
    expected = F.layer_norm(cos, (K,)).transpose(1, 2).unflatten(2, (4, 4))
    torch.testing.assert_close(out.mask_logits, expected)


def test_class_token_backbone_returns_maps_then_class_tokens():
    backbone = ClassTokenViTBackbone(
        spec=tiny(VIT_B), img_size=64, out_indices=(2, 5), return_class_tokens=True
    ).eval()
    assert backbone.vit.cls_token is not None
    assert backbone.vit.pos_embed.shape == (1, 17, 192)  # class token + 4x4 grid
    feats = backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 192, 4, 4)] * 2 + [(2, 192, 1, 1)] * 2


def test_final_norm_standardises_segmenter_tokens():
    backbone = ClassTokenViTBackbone(
        spec=tiny(VIT_B), img_size=64, out_indices=(11,), final_norm=True
    ).eval()
    (x,) = backbone(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(x.mean(1), torch.zeros(1, 4, 4), atol=1e-5, rtol=0)


def test_dpt_reads_the_class_token_and_reassembles_four_strides(build_peer):
    head = build_peer("dpt_b", num_classes=K, crop=CROP, tiny=True).head.eval()
    torch.manual_seed(0)
    maps = [torch.randn(1, 192, 4, 4) for _ in range(4)]
    tokens = [torch.randn(1, 192, 1, 1) for _ in range(4)]
    levels = head.reassemble(maps, tokens)
    assert [tuple(x.shape[1:]) for x in levels] == [
        (96, 16, 16),
        (192, 8, 8),
        (384, 4, 4),
        (768, 2, 2),
    ]
    changed = head([*maps, *(t + 1 for t in tokens)]).mask_logits
    assert not torch.allclose(head([*maps, *tokens]).mask_logits, changed)


def test_dpt_predicts_odd_token_grids(build_peer):
    """A 5x5 grid gives a 3x3 level at 1/32 whose 2x upsampling (6x6) overshoots the 5x5
    level; the skip is resized to fit, as mmsegmentation does."""
    model = build_peer("dpt_b", num_classes=K, crop=CROP, tiny=True).eval()
    with torch.no_grad():
        scores = model.predict(torch.randn(1, 3, 80, 80))
    assert scores.shape == (1, K, 80, 80)


def test_upernet_neck_makes_strides_4_to_32(build_peer):
    neck = build_peer("upernet_b", num_classes=K, crop=CROP, tiny=True).head.neck
    levels = neck([torch.randn(1, 192, 4, 4) for _ in range(4)])
    assert [tuple(x.shape[-2:]) for x in levels] == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_sine_positions_match_detr():
    h, w, dim = 3, 4, 8
    pos = sine_positions(h, w, dim, device=torch.device("cpu")).view(h, w, dim)
    y, x = 2, 1  # row 3 of 3, column 2 of 4
    ny, nx = (y + 1) / h * 2 * math.pi, (x + 1) / w * 2 * math.pi
    steps = dim // 2
    for c in range(steps):
        t = 10000 ** (2 * (c // 2) / steps)
        fn = math.sin if c % 2 == 0 else math.cos
        assert pos[y, x, c] == pytest.approx(fn(ny / t), abs=1e-6)
        assert pos[y, x, steps + c] == pytest.approx(fn(nx / t), abs=1e-6)


def test_maskformer_masks_are_query_pixel_dot_products(build_peer):
    head = build_peer("maskformer_b", num_classes=K, crop=CROP, tiny=True).head.eval()
    seen = {}
    head.pixel_decoder.register_forward_hook(lambda m, i, o: seen.update(pixels=o))
    head.mask_embed.register_forward_hook(lambda m, i, o: seen.update(queries=o))
    out = head([torch.randn(1, 192, 4, 4) for _ in range(3)])
    assert len(out.predictions) == 6  # one per decoder layer (deep supervision)
    expected = torch.einsum("bqd,bdhw->bqhw", seen["queries"], seen["pixels"])
    torch.testing.assert_close(out.mask_logits, expected)


def test_segvit_dot_masks_are_summed_dot_products(build_peer):
    head = build_peer("segvit_dot_b", num_classes=K, crop=CROP, tiny=True).head.eval()
    embeds, tokens = [], []
    head.mask_embed.register_forward_hook(lambda m, i, o: embeds.append(o))
    for proj in head.input_proj:
        proj.register_forward_hook(lambda m, i, o: tokens.append(o))
    out = head([torch.randn(1, 192, 4, 4) for _ in range(3)])
    dots = [
        torch.einsum("bkd,bld->bkl", e, t).unflatten(2, (4, 4))
        for e, t in zip(embeds, tokens, strict=True)
    ]
    assert len(out.predictions) == 3
    for n, pred in enumerate(out.predictions, start=1):  # stage n: the sum of stages 1..n
        torch.testing.assert_close(pred.mask_logits, sum(dots[:n]))


def test_deformable_attention_without_offsets_reads_the_reference_pixel():
    """One level, one point, zero offsets, references at pixel centres: bilinear sampling
    returns each pixel's own value, so the output is the two projections of the input."""
    attn = MSDeformAttn(dim=16, num_heads=2, num_levels=1, num_points=1)
    nn.init.zeros_(attn.sampling_offsets.bias)
    H, W = 3, 5
    value = torch.randn(2, H * W, 16)
    y, x = torch.meshgrid((torch.arange(H) + 0.5) / H, (torch.arange(W) + 0.5) / W, indexing="ij")
    reference = torch.stack([x.flatten(), y.flatten()], -1).expand(2, -1, -1)
    out = attn(torch.randn(2, H * W, 16), reference, value, [(H, W)])
    torch.testing.assert_close(out, attn.output_proj(attn.value_proj(value)))


def test_mask2former_queries_see_only_their_mask_or_everything(build_peer):
    head = build_peer("mask2former_swin_t", num_classes=K, crop=CROP_SWIN, tiny=True).head
    last = head.mask_embed[-1]
    nn.init.zeros_(last.weight)
    pixels = torch.ones(1, 256, 4, 4)
    pixels[..., 2:] = -1  # channel d is +1 on the left half, -1 on the right half
    with torch.no_grad():
        last.bias.copy_(torch.eye(256)[0] * 5)  # every query: mask = 5 * channel 0
        _, visible = head._predict(torch.zeros(1, K, 256), pixels, (4, 4))
        assert visible.shape == (1, 1, K, 16)
        left = torch.tensor([True, True, False, False]).repeat(4)  # row by row
        assert (visible[0, 0] == left).all()
        last.bias.copy_(torch.eye(256)[0] * -50)  # masks cover no pixel: attend to all
        _, visible = head._predict(torch.zeros(1, K, 256), torch.ones(1, 256, 4, 4), (4, 4))
        assert visible.all()
