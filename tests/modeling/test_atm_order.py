"""The ATM head's cascade with hand-set weights: which map each stage reads (deepest first),
which queries it starts from, and how its masks add up.

Weights are set so every quantity is a dot product: the self-attention, the cross-attention's
output projection and the FFN's last layer are zero (each layer hands its queries on
unchanged, up to LayerNorm, which leaves these zero-mean, unit-variance queries as they
are), q is the identity and k is s_j times the identity in stage j, one attention head of
width 4. Stage j's mask at token l is then (s_j / 2) * query . token_l of the map it reads.
"""

import pytest
import torch

from segvit.modeling.heads import ATMHead

QUERIES = torch.tensor([[1.0, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])  # K = 3, D = 4
SCALES = (1.0, 2.0)  # k = s_j * identity in stage j


def _hand_set_head(*, mask_layers="last", num_layers=1) -> ATMHead:
    torch.manual_seed(0)
    head = ATMHead(
        in_dim=4, num_inputs=2, num_classes=3, dim=4, num_heads=1, num_layers=num_layers,
        project=False, mask_layers=mask_layers,
    ).eval()  # fmt: skip
    with torch.no_grad():
        head.queries.weight.copy_(QUERIES)
        for decoder, scale in zip(head.decoders, SCALES, strict=True):
            for layer in decoder.layers:
                for linear in (layer.self_attn.proj, layer.cross_attn.proj, layer.ffn[3]):
                    linear.weight.zero_()
                    linear.bias.zero_()
                layer.cross_attn.q.weight.copy_(torch.eye(4))
                layer.cross_attn.k.weight.copy_(scale * torch.eye(4))
                layer.cross_attn.q.bias.zero_()
                layer.cross_attn.k.bias.zero_()
    return head


def _map(*tokens: list[float]) -> torch.Tensor:
    """A (1, 4, 1, n) feature map of n tokens."""
    return torch.tensor(tokens, dtype=torch.float32).T[None, :, None, :]


SHALLOW = _map([0, 0, 1, 0], [0, 0, 0, 1])  # features[0]
DEEP = _map([1, 0, 0, 0], [0, 1, 0, 0])  # features[-1]
# Stage 1 reads DEEP (s = 1): (1/2) * query . token, per query (rows) and token (columns).
STAGE_1 = torch.tensor([[0.5, -0.5], [0.5, 0.5], [0.5, -0.5]])
# Stage 2 reads SHALLOW (s = 2): query . token.
STAGE_2 = torch.tensor([[1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]])


def test_stages_read_the_deepest_map_first_and_masks_accumulate():
    out = _hand_set_head()([SHALLOW, DEEP])
    (aux,) = out.aux
    torch.testing.assert_close(aux.mask_logits[0, :, 0], STAGE_1, rtol=1e-4, atol=1e-4)
    # The main mask is the sum of both stages' maps: [[1.5, -1.5], [-0.5, -0.5], [-0.5, 0.5]].
    torch.testing.assert_close(out.mask_logits[0, :, 0], STAGE_1 + STAGE_2, rtol=1e-4, atol=1e-4)


def test_without_accumulation_each_stage_keeps_its_own_map():
    head = _hand_set_head()
    head.cumulative = False
    out = head([SHALLOW, DEEP])
    torch.testing.assert_close(out.aux[0].mask_logits[0, :, 0], STAGE_1, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.mask_logits[0, :, 0], STAGE_2, rtol=1e-4, atol=1e-4)


def test_masks_take_the_last_stages_grid():
    # A deeper map on a coarser grid: its (constant) 1x1 mask is upsampled to the 1x2 grid of
    # the last stage before the sum.
    deep = _map([1, 1, 0, 0])  # query . token: 0, 2, 0 -> stage 1 mask 0, 1, 0
    out = _hand_set_head()([SHALLOW, deep])
    assert out.aux[0].mask_logits.shape == out.mask_logits.shape == (1, 3, 1, 2)
    expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]) + STAGE_2
    torch.testing.assert_close(out.mask_logits[0, :, 0], expected, rtol=1e-4, atol=1e-4)


def _inputs_of(module: torch.nn.Module, calls: list) -> None:
    module.register_forward_pre_hook(lambda _, args: calls.append(args), with_kwargs=False)


def test_each_stage_starts_from_the_last_layers_queries_of_the_one_before():
    # Default weights this time: the queries do change from layer to layer.
    torch.manual_seed(0)
    head = ATMHead(in_dim=4, num_inputs=2, num_classes=3, dim=4, num_heads=1, num_layers=2,
                   project=False).eval()  # fmt: skip
    first, second, returned = [], [], []
    _inputs_of(head.decoders[0], first)
    _inputs_of(head.decoders[1], second)
    head.decoders[0].layers[-1].register_forward_hook(lambda m, a, out: returned.append(out[0]))
    features = [torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)]
    head(features)
    (queries_1, memory_1), (queries_2, memory_2) = first[0], second[0]
    torch.testing.assert_close(queries_1[0], head.queries.weight)
    torch.testing.assert_close(memory_1, features[1].flatten(2).transpose(1, 2))  # deepest
    torch.testing.assert_close(memory_2, features[0].flatten(2).transpose(1, 2))
    torch.testing.assert_close(queries_2, returned[0])
    assert not torch.allclose(queries_2, queries_1)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_each_stage_gives_one_mask_whatever_its_depth(num_layers):
    # "last": one mask per stage however many layers it has (here every layer hands its
    # queries on unchanged, so the maps stay the single-layer ones).
    out = _hand_set_head(num_layers=num_layers)([SHALLOW, DEEP])
    assert len(out.aux) == 1
    torch.testing.assert_close(out.mask_logits[0, :, 0], STAGE_1 + STAGE_2, rtol=1e-4, atol=1e-4)
