"""`Recipe.freeze_backbone`: the head trains alone; the backbone gets no gradient, no backward
runs through it, it stays in eval mode and the optimiser does not hold it."""

import torch

from segvit.criteria import ATMCriterion
from segvit.engine.optim import recipe_optimizer
from segvit.engine.recipe import Recipe
from segvit.engine.train import forward_backward, optimizer_step
from segvit.modeling.variants import build_model


def test_a_frozen_backbone_gets_no_gradient_and_does_not_change():
    torch.manual_seed(0)
    model = build_model("segvit", num_classes=3, crop=32, tiny=True,
                        backbone="deit3_small_patch16_224")  # fmt: skip
    model.freeze_backbone()
    model.train()
    assert not model.backbone.training and model.head.training
    recipe = Recipe(lr=1e-2, freeze_backbone=True)
    optimizer = recipe_optimizer(model, recipe)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in model.head.parameters()}

    grad_seen = []
    model.backbone.register_forward_hook(
        lambda m, a, out: grad_seen.extend(t.requires_grad for t in out)
    )
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.queries.weight.clone()
    images, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    for _ in range(2):
        optimizer.zero_grad()
        forward_backward(model, images, labels, ATMCriterion(3))
        optimizer_step(model, optimizer, None, recipe.clip_grad)
    assert grad_seen and not any(grad_seen)  # no graph through the backbone
    assert all(p.grad is None for p in model.backbone.parameters())
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert not torch.equal(model.head.queries.weight, head_before)
    assert model.meta.frozen and model.meta.to_dict()["frozen"] is True


def test_freeze_backbone_is_a_weight_shaping_recipe_field():
    assert "freeze_backbone" in Recipe.weight_shaping_fields()
    assert Recipe().freeze_backbone is False
