"""Recipes: the paper's per dataset, the smoke one, typed overrides."""

import pytest

from segvit.engine.recipe import RECIPES, Recipe, get_recipe
from segvit.errors import SegvitError


def test_paper_recipe_follows_the_dataset():
    recipe = get_recipe("paper", "coco-stuff-10k")
    assert (recipe.iters, recipe.weight_decay, recipe.power) == (80_000, 0.02, 2.0)
    assert (recipe.lr, recipe.head_lr_mult, recipe.batch) == (2e-5, 10.0, 16)
    assert recipe.warmup_iters == 1500 and recipe.clip_grad == 35.0
    assert recipe.pretrained == "hub" and not recipe.tiny
    assert get_recipe("paper", "ade20k").iters == 160_000
    assert get_recipe("paper", "pascal-context").weight_decay == 0.03


def test_paper_recipe_counts_ignored_pixels_as_mask_background():
    assert RECIPES["paper"].mask_loss_excludes_ignored is False


def test_smoke_defaults_to_the_demo_set_and_keeps_its_own_schedule():
    recipe = get_recipe("smoke")
    assert recipe.dataset == "demo" and recipe.tiny and recipe.pretrained == "smoke"
    # Any dataset: the smoke recipe's length and decay stay its own, not the paper's.
    on_ade = get_recipe("smoke", "ade20k")
    assert (on_ade.iters, on_ade.weight_decay) == (recipe.iters, recipe.weight_decay)


def test_unknown_recipe():
    with pytest.raises(SegvitError, match="--preset fast: expected one of paper, smoke"):
        get_recipe("fast")


def test_override_is_typed_and_skips_none():
    recipe = Recipe().override(iters=7, lr=None)
    assert recipe.iters == 7 and recipe.lr == Recipe().lr
    with pytest.raises(SegvitError, match="unknown setting 'lrate'"):
        Recipe().override(lrate=1.0)


@pytest.mark.parametrize("field, value", [("iters", 0), ("batch", -1), ("amp_dtype", "fp8")])
def test_bad_values_fail_in_one_line(field, value):
    with pytest.raises(SegvitError, match=f"recipe paper: {field} must be"):
        Recipe().override(**{field: value})


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64 + 5])
def test_a_seed_torch_or_numpy_cannot_take_is_refused_before_any_work(seed):
    with pytest.raises(SegvitError, match=rf"seed must be 0 to 2\*\*63 - 1 .*got {seed}"):
        get_recipe("smoke").override(seed=seed)
    assert get_recipe("smoke").override(seed=2**63 - 1).seed == 2**63 - 1
