"""The paper's schedule for every dataset the paper recipe trains on, through `get_recipe`.

# References: SegViT (Zhang et al., NeurIPS 2022) Sec. 4.1 and the release configs: AdamW
# lr 2e-5 (head x10), batch 16, 1,500 warm-up iterations, poly decay; 160k iterations with
# weight decay 0.01 on ADE20K, 80k with 0.02 and poly power 2.0 on COCO-Stuff-10K, 80k with
# 0.03 on PASCAL-Context (its 59-class form trains the same way).
"""

import pytest

from segvit.data.catalog import DATASETS
from segvit.engine.recipe import get_recipe

# dataset -> (iterations, weight decay, poly power), from the paper.
PAPER = {
    "ade20k": (160_000, 0.01, 1.0),
    "coco-stuff-10k": (80_000, 0.02, 2.0),
    "pascal-context": (80_000, 0.03, 1.0),
    "pascal-context-59": (80_000, 0.03, 1.0),
}


def test_every_paper_dataset_has_a_row_here():
    assert set(PAPER) == set(DATASETS) - {"demo"}  # demo is not a paper dataset


@pytest.mark.parametrize("dataset", sorted(PAPER))
def test_paper_schedule_of_each_dataset(dataset):
    recipe = get_recipe("paper", dataset)
    assert (recipe.iters, recipe.weight_decay, recipe.power) == PAPER[dataset]


@pytest.mark.parametrize("dataset", sorted(PAPER))
def test_the_rest_of_the_paper_recipe_is_shared_by_every_dataset(dataset):
    recipe = get_recipe("paper", dataset)
    assert (recipe.lr, recipe.head_lr_mult, recipe.batch) == (2e-5, 10.0, 16)
    assert (recipe.warmup_iters, recipe.warmup_ratio, recipe.min_lr) == (1500, 1e-6, 0.0)
    assert recipe.clip_grad == 35.0 and recipe.name == "paper"


def test_the_smoke_recipe_keeps_its_own_schedule():
    recipe = get_recipe("smoke", "demo")
    assert (recipe.iters, recipe.power) == (150, 1.0)
    assert get_recipe("smoke") == recipe
