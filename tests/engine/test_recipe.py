"""Presets and the loss of each variant."""

from pathlib import Path

import pytest
import torch

from segvit.engine.recipe import get_preset, make_loss, training_configs
from segvit.errors import SegvitError
from segvit.modeling.variants import ModelConfig, build_model, get_variant


def test_paper_recipe_follows_the_dataset():
    model_cfg, train_cfg, eval_cfg = training_configs(
        "segvit_l", preset=get_preset("paper"), dataset="coco-stuff-10k",
        work_dir=Path("w"), data_root=Path("d"),
    )  # fmt: skip
    assert model_cfg.pretrained == "hub" and not model_cfg.tiny
    assert (train_cfg.iters, train_cfg.weight_decay, train_cfg.power) == (80_000, 0.02, 2.0)
    assert (train_cfg.lr, train_cfg.head_lr_mult, train_cfg.batch) == (2e-5, 10.0, 16)
    assert train_cfg.warmup_iters == 1500 and train_cfg.clip_grad == 35.0
    assert eval_cfg.dataset == "coco-stuff-10k" and eval_cfg.max_images is None


def test_smoke_trains_tiny_models_on_the_demo_data():
    model_cfg, train_cfg, _ = training_configs(
        "setr_b", preset=get_preset("smoke"), dataset=None, work_dir=Path("w"),
        data_root=Path("d"), overrides={"iters": 7},
    )  # fmt: skip
    assert model_cfg.dataset == "demo" and model_cfg.tiny and model_cfg.pretrained is None
    assert train_cfg.iters == 7 and train_cfg.loss == "pixel_ce"


def test_smoke_refuses_another_dataset():
    with pytest.raises(SegvitError, match="--preset smoke trains on demo, not ade20k"):
        training_configs("segvit_b", preset=get_preset("smoke"), dataset="ade20k",
                         work_dir=Path("w"), data_root=Path("d"))  # fmt: skip


def test_unknown_preset():
    with pytest.raises(SegvitError, match="--preset fast: expected one of paper, smoke"):
        get_preset("fast")


@pytest.mark.parametrize(
    "variant, keys",
    [
        ("segvit_b", {"loss", "loss_cls", "loss_focal", "loss_dice"}),
        ("setr_b", {"loss"}),
        ("atm_single_ce_b", {"loss"}),
    ],
)
def test_each_variant_gets_its_loss(variant, keys):
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant, "demo", crop=64, tiny=True))
    labels = torch.randint(0, 8, (2, 64, 64))
    labels[:, :4] = 255
    loss_fn = make_loss(get_variant(variant).loss, num_classes=8)
    losses = loss_fn(model(torch.randn(2, 3, 64, 64)), labels)
    assert keys <= set(losses)
    assert torch.isfinite(losses["loss"]) and losses["loss"] > 0
