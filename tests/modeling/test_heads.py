"""Head initialisation as the release's `init_weights`: statistics per parameter family, torch's
own nn.MultiheadAttention / nn.TransformerDecoder as the reference for the packed in-projection,
and torch's default initialisation failing the same checks."""

import math

import pytest
import torch
from torch import nn

from segvit.modeling.decoder import Attention, Decoder
from segvit.modeling.heads import ATMHead, QUHead, SETRNaiveHead

D, HEADS, CLASSES = 128, 4, 40  # layers of 5k-65k weights: std estimates within ~1.5%
STD_TOL = 0.05  # relative tolerance on a standard deviation
PACKED_BOUND = math.sqrt(6 / (3 * D + D))  # xavier-uniform over the packed (3D, D) matrix


def _atm():
    return ATMHead(in_dim=96, num_inputs=2, num_classes=CLASSES, dim=D, num_heads=HEADS)


def _single():
    return ATMHead(
        in_dim=D, num_inputs=1, num_classes=CLASSES, dim=D, num_heads=HEADS, project=False,
        mask_layers="every",
    )  # fmt: skip


def _qu():
    return QUHead(in_dim=96, num_inputs=2, num_classes=CLASSES, dim=D, num_heads=HEADS, grid=(6, 6))


def _packed_attentions(head):
    """Names of the attentions the release builds as nn.MultiheadAttention."""
    names = set()
    for name, module in head.named_modules():
        if isinstance(module, Decoder):
            roles = ("self_attn", "cross_attn") if module.packed_cross_attn else ("self_attn",)
            names |= {f"{name}.layers.{i}.{r}" for i in range(len(module.layers)) for r in roles}
    return names


def _std_ok(tensor, expected):
    return abs(tensor.std().item() / expected - 1) < STD_TOL


def release_init_problems(head):
    """Every way the head's parameters depart from the release's initialisation."""
    problems, packed = [], _packed_attentions(head)
    in_packed = {f"{a}.{p}" for a in packed for p in "qkv"}
    for name, module in head.named_modules():
        if name in packed:
            w = torch.cat([module.q.weight, module.k.weight, module.v.weight])  # (3D, D)
            top = w.abs().max().item()
            if not (0.97 * PACKED_BOUND < top <= PACKED_BOUND):
                problems.append(f"{name} q/k/v: max {top:.4f}, packed bound {PACKED_BOUND:.4f}")
            if not _std_ok(w, PACKED_BOUND / math.sqrt(3)):
                problems.append(f"{name} q/k/v: std {w.std():.4f}")
            if any(linear.bias.any() for linear in (module.q, module.k, module.v)):
                problems.append(f"{name} q/k/v: bias not 0")
        elif isinstance(module, nn.Linear) and name not in in_packed:
            if module.weight.numel() >= 4096 and not _std_ok(module.weight, 0.02):
                problems.append(f"{name}: std {module.weight.std():.4f}, expected 0.02")
            if module.weight.abs().max() > 0.02 * 6:  # a normal this size never reaches 6 sigma
                problems.append(f"{name}: |w| up to {module.weight.abs().max():.3f}")
            if module.bias is not None and module.bias.any():
                problems.append(f"{name}: bias not 0")
        elif isinstance(module, nn.LayerNorm):
            if not (torch.all(module.weight == 1) and torch.all(module.bias == 0)):
                problems.append(f"{name}: LayerNorm not 1 / 0")
        elif isinstance(module, nn.Embedding) and (
            not _std_ok(module.weight, 1.0) or module.weight.mean().abs() > 0.1
        ):
            problems.append(f"{name}: queries not N(0, 1)")
    return problems


def _torch_defaults(head):
    for module in head.modules():
        if module is not head and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return head


@pytest.mark.parametrize("make", [_atm, _single, _qu])
def test_heads_start_from_the_release_initialisation(make):
    torch.manual_seed(0)
    head = make()
    assert release_init_problems(head) == []
    assert _packed_attentions(head)  # the check did look at packed attentions


@pytest.mark.parametrize("make", [_atm, _qu])
def test_torch_default_initialisation_fails_the_same_checks(make):
    torch.manual_seed(0)
    problems = release_init_problems(_torch_defaults(make()))
    assert any("class_embed" in p or "input_proj" in p for p in problems)
    assert any("q/k/v: max" in p for p in problems)  # kaiming-uniform: 1/sqrt(D) < bound
    assert any("bias not 0" in p for p in problems)


def test_separate_xavier_draws_for_q_k_v_exceed_the_packed_bound():
    """xavier over each (D, D) matrix reaches sqrt(6 / 2D): not the packed distribution."""
    torch.manual_seed(0)
    head = _atm()
    for name in _packed_attentions(head):
        attention = head.get_submodule(name)
        for linear in (attention.q, attention.k, attention.v):
            nn.init.xavier_uniform_(linear.weight)
    assert any("q/k/v: max" in p for p in release_init_problems(head))


def test_packed_in_projection_is_torch_multihead_attentions_own_draw():
    decoder = Decoder(dim=64, num_heads=4, num_layers=2)
    torch.manual_seed(3)
    decoder._init_weights()
    reference = nn.MultiheadAttention(64, 4)
    torch.manual_seed(3)
    reference._reset_parameters()  # torch's xavier over the packed in_proj_weight, bias 0
    attention = decoder.layers[0].self_attn
    ours = torch.cat([attention.q.weight, attention.k.weight, attention.v.weight])
    assert torch.equal(ours, reference.in_proj_weight)
    assert not reference.in_proj_bias.any() and not attention.q.bias.any()


def test_layers_of_a_decoder_share_the_packed_draw_as_torch_clones_them():
    # The reference: nn.TransformerDecoder deep-copies one layer, so its layers start equal.
    torch_decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(64, 4, 256), 3)
    first, last = torch_decoder.layers[0].self_attn, torch_decoder.layers[2].self_attn
    assert torch.equal(first.in_proj_weight, last.in_proj_weight)

    head = _qu()
    decoder = head.decoders[0]
    for role in ("self_attn", "cross_attn"):
        a, b = getattr(decoder.layers[0], role), getattr(decoder.layers[2], role)
        assert torch.equal(a.q.weight, b.q.weight) and torch.equal(a.v.weight, b.v.weight)
        assert not torch.equal(a.proj.weight, b.proj.weight)  # Linear: redrawn per layer
    assert not torch.equal(
        decoder.layers[0].self_attn.q.weight, head.decoders[1].layers[0].self_attn.q.weight
    )
    # The ATM's cross-attention is the release's own Attention: truncated normal per layer.
    atm_layers = _atm().decoders[0].layers
    assert not torch.equal(atm_layers[0].cross_attn.q.weight, atm_layers[1].cross_attn.q.weight)
    assert atm_layers[0].cross_attn.q.weight.abs().max() < 0.12


def test_atm_cross_attention_and_ffn_are_truncated_normal():
    torch.manual_seed(0)
    layer = _atm().decoders[0].layers[0]
    cross = layer.cross_attn
    for linear in (cross.q, cross.k, cross.v, cross.proj, layer.self_attn.proj, *layer.ffn[::3]):
        assert _std_ok(linear.weight, 0.02) and not linear.bias.any()
    assert isinstance(layer.cross_attn, Attention)


def test_setr_naive_initialisation():
    torch.manual_seed(0)
    head = SETRNaiveHead(in_dim=192, num_classes=CLASSES)
    assert _std_ok(head.classifier.weight, 0.01) and not head.classifier.bias.any()
    assert _std_ok(head.conv.weight, math.sqrt(2 / 256))  # kaiming, fan-out 256, ReLU gain
    assert torch.all(head.bn.weight == 1) and not head.bn.bias.any()
    _torch_defaults(head)
    assert not _std_ok(head.classifier.weight, 0.01) and head.classifier.bias.any()
    assert not _std_ok(head.conv.weight, math.sqrt(2 / 256))
