"""The training engine does what each recipe field says: the learning rate of every
iteration (warm-up, poly power, min_lr, head multiplier) against values worked out by hand,
the weight decay groups, and gradient clipping under accumulation.
"""

import pytest
import torch
import torch.nn.functional as F

from segvit.engine import checkpoint as ckpt
from segvit.engine.logging import read_log
from segvit.engine.train import train


def _train(tiny, work_dir, *, model=None, loss_fn=None, **recipe):
    settings = dict(
        work_dir=str(work_dir), iters=1, batch=4, log_interval=1, eval_interval=100,
        checkpoint_interval=100, num_workers=0, device="cpu",
    )  # fmt: skip
    if model is None:
        torch.manual_seed(1)
        model = tiny.TinySegmentor()
    train(
        tiny.make_cfg(**(settings | recipe)),
        model=model,
        train_set=tiny.TinySet(),
        loss_fn=loss_fn or tiny.pixel_loss,
    )
    return [r for r in read_log(work_dir / "log.jsonl") if r["kind"] == "train"]


def test_every_iteration_uses_the_lr_of_the_recipes_schedule(tiny, tmp_path):
    steps = _train(
        tiny, tmp_path, iters=4, lr=0.01, head_lr_mult=3.0, warmup_iters=2, warmup_ratio=0.5,
        power=2.0, min_lr=0.001,
    )  # fmt: skip
    # Iteration i (0-based): (base - min_lr) * (1 - i/4)^2 + min_lr, times the warm-up factor
    # 1 - (1 - i/2) * (1 - 0.5) while i < 2 (0.5, then 0.75). Backbone base 0.01:
    #   i=0: 0.01 * 0.5 = 0.005;   i=1: (0.009 * 0.5625 + 0.001) * 0.75 = 0.004546875
    #   i=2: 0.009 * 0.25 + 0.001 = 0.00325;   i=3: 0.009 * 0.0625 + 0.001 = 0.0015625
    # Head base 0.03 (x3), the same absolute min_lr:
    #   i=0: 0.015;   i=1: (0.029 * 0.5625 + 0.001) * 0.75 = 0.012984375
    #   i=2: 0.029 * 0.25 + 0.001 = 0.00825;   i=3: 0.029 * 0.0625 + 0.001 = 0.0028125
    assert [r["iter"] for r in steps] == [1, 2, 3, 4]
    assert [r["lr"] for r in steps] == pytest.approx([0.005, 0.004546875, 0.00325, 0.0015625])
    assert [r["lr_head"] for r in steps] == pytest.approx([0.015, 0.012984375, 0.00825, 0.0028125])


def test_without_warm_up_the_first_iteration_runs_at_the_full_lr(tiny, tmp_path):
    steps = _train(tiny, tmp_path, iters=2, lr=0.02, head_lr_mult=1.0, warmup_iters=0)
    # Poly power 1 to 0: 0.02, then 0.02 * (1 - 1/2).
    assert [r["lr"] for r in steps] == pytest.approx([0.02, 0.01])
    assert [r["lr_head"] for r in steps] == pytest.approx([0.02, 0.01])


@pytest.mark.parametrize(
    "release_rule, groups",
    [
        (True, {"backbone": 0.07, "backbone_no_decay": 0.0, "head": 0.07}),
        (False, {"backbone": 0.07, "backbone_no_decay": 0.0, "head": 0.07, "head_no_decay": 0.0}),
    ],
)
def test_weight_decay_and_its_rule_reach_the_optimizer(tiny, tmp_path, release_rule, groups):
    # The release's rule decays the head's norms and queries too: no head_no_decay group.
    _train(tiny, tmp_path, weight_decay=0.07, release_decay_rule=release_rule)
    saved = ckpt.load_state(tmp_path / "last.state.pt")["optimizer"]["param_groups"]
    assert {g["name"]: g["weight_decay"] for g in saved} == groups


def _mean_over_pixels(output, labels):
    """Cross-entropy summed over pixels / all pixels: micro-batch means average exactly."""
    logits = F.interpolate(output.mask_logits, size=labels.shape[-2:], mode="bilinear")
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    return {"loss": ce.sum() / labels.numel() + output.class_logits.pow(2).mean()}


@pytest.mark.parametrize("clip", [1e-3, 1e3], ids=["clipping", "not-clipping"])
def test_accumulated_clipped_gradient_equals_the_full_batchs(tiny, tmp_path, clip):
    """Two micro-batches of 2 must give the full batch of 4's gradient: the same norm before
    clipping (the log's grad_norm) and the same clipped gradient, left on the parameters
    after the step. (The weights alone would not tell: AdamW's step hardly depends on the
    gradient's scale.)"""
    torch.manual_seed(1)
    full, accumulated = tiny.TinySegmentor(), tiny.TinySegmentor()
    full.backbone.drop.p = accumulated.backbone.drop.p = 0.0  # dropout draws differ by batch
    accumulated.load_state_dict(full.state_dict())
    norms = {}
    for model, name, device_batch in ((full, "full", 4), (accumulated, "acc", 2)):
        (step,) = _train(
            tiny, tmp_path / name, model=model, loss_fn=_mean_over_pixels, clip_grad=clip,
            device_batch=device_batch, lr=0.01,
        )  # fmt: skip
        norms[name] = step["grad_norm"]
    assert norms["acc"] == pytest.approx(norms["full"], rel=1e-5)
    grads = {}
    for name, model in (("full", full), ("acc", accumulated)):
        grads[name] = [p.grad for p in model.parameters()]
        clipped = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads[name]]))
        assert clipped.item() == pytest.approx(min(clip, norms["full"]), rel=1e-4)
    for a, b in zip(grads["full"], grads["acc"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)


def test_the_last_iteration_is_logged_off_the_interval(tiny, tmp_path):
    steps = _train(tiny, tmp_path, iters=5, log_interval=2)
    assert [r["iter"] for r in steps] == [2, 4, 5]
