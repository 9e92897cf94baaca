"""The optimiser is the release's AdamW: betas (0.9, 0.999), eps 1e-8, decoupled decay.

# References: SegViT release configs (optimizer AdamW, lr 2e-5, betas (0.9, 0.999),
# weight_decay per dataset); Loshchilov & Hutter 2019 for the update written out below.
"""

import math

import pytest
import torch
from torch import nn
from torch.optim import AdamW

from segvit.engine.optim import build_optimizer


class _OneWeight(nn.Module):
    """A backbone of one scalar weight and no head: one decaying group."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(1, 1, bias=False)


def test_groups_carry_the_release_betas(tiny):
    optimizer = build_optimizer(tiny.TinySegmentor(), lr=1e-3)
    assert isinstance(optimizer, AdamW)
    assert {g["betas"] for g in optimizer.param_groups} == {(0.9, 0.999)}
    assert {g["eps"] for g in optimizer.param_groups} == {1e-8}


def test_two_steps_follow_adamw_by_hand():
    model = _OneWeight()
    with torch.no_grad():
        model.backbone.weight.fill_(1.0)
    optimizer = build_optimizer(model, lr=0.1, weight_decay=0.5)
    w, m, v = 1.0, 0.0, 0.0
    for step, grad in enumerate((2.0, -1.0), start=1):
        model.backbone.weight.grad = torch.full((1, 1), grad)
        optimizer.step()
        # Decay first (w * (1 - lr * wd)), then the bias-corrected Adam step.
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
        w = w * (1 - 0.1 * 0.5) - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
        assert model.backbone.weight.item() == pytest.approx(w, rel=1e-6), step
