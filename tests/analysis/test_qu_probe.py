"""The QU probe: position share of token variance, attention on each query's own cell."""

import pytest
import torch
from torch import nn

from segvit.analysis.qu_probe import (
    chance_share,
    own_attention,
    position_share,
    probe_images,
    probe_qu,
)
from segvit.data.catalog import get_dataset
from segvit.data.demo import make_demo
from segvit.errors import SegvitError
from segvit.modeling.variants import build_model


def test_tokens_that_are_their_cell_code_give_share_one():
    codes = torch.randn(16, 8)  # P cells, C channels
    tokens = codes.expand(5, -1, -1)  # the same at every image
    assert position_share(tokens) == pytest.approx(1.0)


def test_tokens_without_position_sit_at_the_chance_share():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(50, 64, 32, generator=generator)
    assert position_share(tokens) == pytest.approx(chance_share(50, 64), rel=0.05)
    assert chance_share(50, 64) == pytest.approx(63 / 3199)


def test_position_share_is_the_positional_part_of_the_variance():
    generator = torch.Generator().manual_seed(1)
    codes = torch.randn(1, 64, 32, generator=generator)  # variance 1 by position
    noise = torch.randn(400, 64, 32, generator=generator) * 3.0  # variance 9 within
    assert position_share(codes + noise) == pytest.approx(0.1, abs=0.01)
    with pytest.raises(SegvitError, match="expected"):
        position_share(torch.zeros(1, 4, 2))


def _shrunk(crop=64):
    torch.manual_seed(0)
    return build_model("segvit_shrunk_b", num_classes=3, crop=crop, tiny=True).eval()


def test_uniform_attention_gives_one_over_the_token_count():
    model = _shrunk()
    for layer in model.head.decoders[0].layers:  # zero queries: every score 0
        nn.init.zeros_(layer.cross_attn.q.weight)
        nn.init.zeros_(layer.cross_attn.q.bias)
    tap = torch.randn(2, 192, 4, 4)
    assert own_attention(model.head, tap) == pytest.approx([1 / 16] * 3)


@torch.no_grad()
def test_queries_that_find_their_cell_give_weight_near_one():
    model = _shrunk()
    head, dim = model.head, 96
    head.input_proj[0] = nn.Identity()  # the tap's tokens are the memory as they are
    layer = head.decoders[0].layers[0]
    for linear in (layer.self_attn.proj,):  # self-attention adds nothing: x = norm1(queries)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
    for linear in (layer.cross_attn.q, layer.cross_attn.k):  # scores: 4 <x_i, memory_j>
        linear.weight.copy_(2 * torch.eye(dim))
        nn.init.zeros_(linear.bias)
    queries = head.queries.weight  # (16, 96), N(0, 1)
    tap = queries.T.reshape(1, dim, 4, 4)  # each cell's token is its own query
    weights = own_attention(head, tap)
    assert weights[0] > 0.95 and all(0 < w <= 1 for w in weights)


def test_probe_on_demo_images(tmp_path):
    make_demo(tmp_path, num_train=1, num_val=3)
    images = probe_images(get_dataset("demo"), tmp_path, crop=64)
    assert images.shape == (3, 3, 64, 64)
    probe = probe_qu(_shrunk(), images)
    assert probe.images == 3 and probe.uniform == 1 / 16
    assert len(probe.own_attention) == 3
    assert all(0 < w < 1 for w in probe.own_attention)
    assert probe.chance_share == pytest.approx(chance_share(3, 16))
    assert 0 < probe.position_share <= 1
    setr = build_model("setr_b", num_classes=3, crop=64, tiny=True)
    with pytest.raises(SegvitError, match="no query up-sampling head"):
        probe_qu(setr, images)


def test_shrunk_evidence_compares_the_start_with_the_trained_weights(tmp_path, monkeypatch):
    import segvit.experiments.qu_evidence as qu_evidence
    import segvit.experiments.spec as spec
    from segvit.engine.checkpoint import save_weights
    from segvit.experiments.demo import _shrunk_evidence, demo_sweep
    from segvit.experiments.qu_evidence import shrunk_evidence

    make_demo(tmp_path, num_train=1, num_val=2)
    # A random backbone stands in for the pretrained one (pretraining is tested elsewhere).
    no_pretraining = lambda e, root: e.with_recipe(pretrained=None)  # noqa: E731
    monkeypatch.setattr(qu_evidence, "with_backbone", no_pretraining)
    start = spec.resolve("segvit_shrunk_b", recipe="smoke").with_recipe(pretrained=None)
    model = start.build_model()
    with torch.no_grad():
        model.head.queries.weight.mul_(1.5)  # "training" moved every query by half its norm
    runs = tmp_path / "runs"
    weights = runs / "table8" / "smoke" / "shrunk-atm" / "final.pt"  # where the demo's row is
    weights.parent.mkdir(parents=True)
    save_weights(weights, model.state_dict(), model.meta.to_dict() | start.record())
    evidence = shrunk_evidence(weights, tmp_path)
    assert evidence.query_change == pytest.approx(0.5, rel=1e-5)
    assert evidence.start.position_share == pytest.approx(evidence.random_backbone.position_share)
    assert evidence.trained.own_attention != evidence.start.own_attention
    text = evidence.markdown(150)
    assert "after the row's 150 iterations" in text and "moved 50.00% of their norm" in text

    _shrunk_evidence(demo_sweep(data_root=tmp_path, results=tmp_path / "results", runs=runs))
    assert (tmp_path / "results" / "smoke" / "qu_probe.md").read_text() == text
