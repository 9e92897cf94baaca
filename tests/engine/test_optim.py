"""AdamW groups (head x10, who decays) and the warm-up + poly schedule against mmcv's formula."""

import pytest
from torch import nn

from segvit.engine.optim import build_optimizer, build_schedule
from segvit.errors import SegvitError


def _groups(optimizer):
    """{group name: ({parameter ids}, lr, weight decay)}."""
    return {
        g["name"]: ({id(p) for p in g["params"]}, g["lr"], g["weight_decay"])
        for g in optimizer.param_groups
    }


def _ids(*params):
    return {id(p) for p in params}


def test_head_gets_ten_times_the_lr_and_norms_embeddings_skip_decay(tiny):
    model = tiny.TinySegmentor()
    bb, head = model.backbone, model.head
    groups = _groups(build_optimizer(model, lr=1e-3, weight_decay=0.05))
    assert groups["backbone"] == (_ids(bb.proj.weight, bb.proj.bias), 1e-3, 0.05)
    assert groups["backbone_no_decay"] == (
        _ids(bb.pos_embed, bb.norm.weight, bb.norm.bias),
        1e-3,
        0.0,
    )
    assert groups["head"] == (_ids(head.class_embed.weight, head.class_embed.bias), 1e-2, 0.05)
    no_decay = _ids(head.queries.weight, head.norm.weight, head.norm.bias)
    assert groups["head_no_decay"] == (no_decay, 1e-2, 0.0)


def test_release_rule_decays_embeddings_and_head_norms(tiny):
    model = tiny.TinySegmentor()
    bb = model.backbone
    groups = _groups(build_optimizer(model, lr=1e-3, weight_decay=0.05, release_rule=True))
    assert set(groups) == {"backbone", "backbone_no_decay", "head"}
    assert groups["backbone_no_decay"][0] == _ids(bb.norm.weight, bb.norm.bias)
    assert len(groups["head"][0]) == len(list(model.head.parameters()))


def test_frozen_parameters_are_left_out_and_empty_models_refused(tiny):
    model = tiny.TinySegmentor()
    model.backbone.requires_grad_(False)
    assert set(_groups(build_optimizer(model))) == {"head", "head_no_decay"}
    with pytest.raises(SegvitError, match="no trainable parameters"):
        build_optimizer(nn.ReLU())


def _mmcv_lr(base, i, total, warmup, ratio, power, min_lr=0.0):
    """mmcv PolyLrUpdaterHook with linear warm-up, written from its documented formula."""
    regular = (base - min_lr) * (1 - i / total) ** power + min_lr
    if i >= warmup:
        return regular
    k = (1 - i / warmup) * (1 - ratio)
    return regular * (1 - k)


@pytest.mark.parametrize("power,min_lr", [(1.0, 0.0), (2.0, 0.0), (1.0, 1e-4)])
def test_schedule_follows_warmup_then_poly(tiny, power, min_lr):
    optimizer = build_optimizer(tiny.TinySegmentor(), lr=1e-3)
    schedule = build_schedule(
        optimizer, total_iters=100, warmup_iters=10, warmup_ratio=1e-6, power=power, min_lr=min_lr
    )
    for i in range(100):
        for group in optimizer.param_groups:
            base = 1e-2 if group["name"].startswith("head") else 1e-3
            expected = _mmcv_lr(base, i, 100, 10, 1e-6, power, min_lr)
            assert group["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15), (i, group["name"])
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(min_lr, abs=1e-15)


def test_first_step_starts_at_the_warmup_ratio(tiny):
    optimizer = build_optimizer(tiny.TinySegmentor(), lr=2e-5)
    build_schedule(optimizer, total_iters=160_000)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-5 * 1e-6)


def test_schedule_state_round_trips(tiny):
    model = tiny.TinySegmentor()
    optimizer = build_optimizer(model)
    schedule = build_schedule(optimizer, total_iters=50, warmup_iters=5)
    for _ in range(7):
        optimizer.step()
        schedule.step()
    state = schedule.state_dict()
    assert state["lr_lambdas"][0]["total_iters"] == 50  # the lambda object is saved, not lost
    other_opt = build_optimizer(model)
    other = build_schedule(other_opt, total_iters=50, warmup_iters=5)
    other_opt.load_state_dict(optimizer.state_dict())
    other.load_state_dict(state)
    for _ in range(5):
        optimizer.step(), schedule.step(), other_opt.step(), other.step()
        assert [g["lr"] for g in optimizer.param_groups] == [
            g["lr"] for g in other_opt.param_groups
        ]


def test_bad_arguments_are_clear_errors(tiny):
    with pytest.raises(SegvitError, match="lr > 0"):
        build_optimizer(tiny.TinySegmentor(), lr=0.0)
    optimizer = build_optimizer(tiny.TinySegmentor())
    with pytest.raises(SegvitError, match="total_iters > 0"):
        build_schedule(optimizer, total_iters=0)


def test_a_ddp_style_wrapper_is_looked_through(tiny):
    wrapper = nn.Module()
    wrapper.module = tiny.TinySegmentor()
    head_lr = {g["name"]: g["lr"] for g in build_optimizer(wrapper, lr=1.0).param_groups}["head"]
    assert head_lr == 10.0
