"""Resume continues only the run it was asked to: another variant, dataset, loss or any
weight-shaping setting is refused by name; the saved data position counts whole optimizer
steps, gradient accumulation included."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from segvit.engine import checkpoint as ckpt
from segvit.engine.recipe import Recipe
from segvit.engine.train import train
from segvit.errors import SegvitError
from segvit.experiments.spec import resolve

RECORD = {"variant": "tiny", "trained_on": "shapes", "loss": "pixel-ce", "recipe": "test"}


def _cfg(work: Path, record=RECORD, **overrides):
    values = dict(
        iters=2,
        batch=4,
        lr=1e-2,
        warmup_iters=1,
        log_interval=1,
        eval_interval=100,
        checkpoint_interval=1,
        num_workers=0,
        device="cpu",
        work_dir=str(work),
    )
    cfg = sys.modules["engine_tiny"].make_cfg(**(values | overrides))
    return replace(cfg, record=dict(record))


def _train(tiny, cfg, seed=1, **kwargs):
    torch.manual_seed(seed)
    model = tiny.TinySegmentor()
    train(cfg, model=model, train_set=tiny.TinySet(), loss_fn=tiny.pixel_loss, **kwargs)
    return model.state_dict()


@pytest.mark.parametrize("key", sorted(RECORD))
def test_resume_refuses_a_run_of_another_variant_dataset_loss_or_recipe(tiny, tmp_path, key):
    _train(tiny, _cfg(tmp_path))
    other = RECORD | {key: RECORD[key] + "-2"}
    with pytest.raises(
        SegvitError,
        match=rf"resume .*: {key} was '{RECORD[key]}', now "
        rf"'{RECORD[key]}-2'; keep it or use a new work dir",
    ):
        _train(tiny, _cfg(tmp_path, record=other, resume=True))


def test_resume_refuses_a_saved_run_that_does_not_record_a_compared_setting(tiny, tmp_path):
    _train(tiny, _cfg(tmp_path))
    paths = ckpt.CheckpointPaths(tmp_path)
    state = ckpt.load_state(paths.state)
    del state["config"]["loss"]  # a run saved before the loss was recorded
    ckpt.save_state(paths.state, state)
    with pytest.raises(SegvitError, match=r"loss was None, now 'pixel-ce'"):
        _train(tiny, _cfg(tmp_path, resume=True))


@pytest.mark.parametrize("setting", Recipe.weight_shaping_fields())
def test_every_weight_shaping_setting_and_the_record_must_match(setting):
    cfg = _cfg(Path("w"))
    assert setting in cfg.must_match and set(RECORD) <= set(cfg.must_match)


def test_a_runs_record_names_its_variant_dataset_spec_recipe_and_loss():
    experiment = resolve("atm_single_b", "demo", recipe="smoke")
    record = experiment.record()
    assert {"variant", "trained_on", "dataset_spec", "recipe", "loss"} <= set(record)
    assert record["loss"] == experiment.criterion().name
    other = resolve("atm_single_ce_b", "demo", recipe="smoke").record()
    assert other["loss"] != record["loss"]  # so resuming one as the other is refused


@pytest.mark.parametrize("device_batch", [1, 2, 4])
def test_the_saved_data_position_counts_whole_steps_under_accumulation(
    tiny, tmp_path, device_batch
):
    _train(tiny, _cfg(tmp_path, iters=2, device_batch=device_batch))
    sampler = ckpt.load_state(ckpt.CheckpointPaths(tmp_path).state)["sampler"]
    consumed = 2 * 4  # two steps of batch 4, however many forwards each took
    assert (sampler["epoch"], sampler["position"]) == divmod(consumed, len(tiny.TinySet()))


def test_a_killed_accumulating_run_resumes_to_the_straight_runs_weights(tiny, tmp_path):
    class Killed(Exception):
        pass

    def kill(i):
        if i == 2:
            raise Killed

    cfg = _cfg(tmp_path / "straight", iters=4, device_batch=2)
    straight = _train(tiny, cfg)
    work = tmp_path / "killed"
    with pytest.raises(Killed):
        _train(tiny, replace(cfg, work_dir=str(work)), on_iteration=kill)
    resumed = _train(tiny, replace(cfg, work_dir=str(work), resume=True), seed=99)
    assert tiny.state_equal(resumed, straight)
