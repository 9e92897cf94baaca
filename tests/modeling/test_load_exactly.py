"""Exact loading: every tensor present and of its shape, or one line naming the first that
is not; only the tensors a caller says it rebuilds may be absent."""

import pytest
import torch
from torch import nn

from segvit.errors import SegvitError
from segvit.modeling.weights import load_exactly


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))


@pytest.mark.parametrize("dropped", ["0.weight", "1.bias", "2.bias"])
def test_one_missing_tensor_is_refused_by_name(dropped):
    state = _net().state_dict()
    del state[dropped]
    target = _net()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(SegvitError, match=rf"f.pth: weights do not fit this net: no tensor "
                                          rf"{dropped} \(and 0 more\)"):  # fmt: skip
        load_exactly(target, state, "f.pth", "this net")
    for k, v in target.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k]), k


def test_several_missing_tensors_are_counted():
    state = {k: v for k, v in _net().state_dict().items() if not k.startswith("2.")}
    with pytest.raises(SegvitError, match=r"no tensor 2.weight \(and 1 more\)"):
        load_exactly(_net(), state, "f.pth", "this net")


def test_rebuilt_tensors_may_be_missing_and_only_they():
    source = _net()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("2.")}
    target = _net()
    load_exactly(target, state, "f.pth", "this net", rebuilt=("2.weight", "2.bias"))
    for k, v in state.items():
        assert torch.equal(target.state_dict()[k], v), k
    del state["0.bias"]
    with pytest.raises(SegvitError, match="no tensor 0.bias"):
        load_exactly(_net(), state, "f.pth", "this net", rebuilt=("2.weight", "2.bias"))


def test_an_unexpected_or_misshapen_tensor_is_refused():
    state = _net().state_dict() | {"3.weight": torch.zeros(1)}
    with pytest.raises(SegvitError, match="unexpected tensor 3.weight"):
        load_exactly(_net(), state, "f.pth", "this net")
    state = _net().state_dict() | {"2.bias": torch.zeros(3)}
    with pytest.raises(SegvitError, match=r"tensor 2.bias has shape \(3,\), this net needs"):
        load_exactly(_net(), state, "f.pth", "this net")
