"""The loop: bitwise resume after a kill at any moment, NaN stop, logs, best, refusals."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segvit import fileio
from segvit.engine import checkpoint as ckpt
from segvit.engine.logging import read_log
from segvit.engine.train import train
from segvit.errors import SegvitError

ITERS = 8


def _cfg(work_dir: Path, **overrides):
    values = dict(
        variant="tiny",
        dataset="demo",
        work_dir=str(work_dir),
        iters=ITERS,
        batch=4,
        lr=1e-2,
        warmup_iters=3,
        log_interval=2,
        eval_interval=4,
        checkpoint_interval=3,
        num_workers=0,
        device="cpu",
    )
    return sys.modules["engine_tiny"].make_cfg(**(values | overrides))  # the `tiny` fixture


def _run(tiny, work_dir: Path, *, init_seed: int = 1, **kwargs) -> dict[str, torch.Tensor]:
    """Train a freshly initialised tiny model; returns its final state dict."""
    torch.manual_seed(init_seed)
    model = tiny.TinySegmentor()
    cfg_overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in tiny.cfg_fields()}
    train(
        _cfg(work_dir, **cfg_overrides),
        model=model,
        train_set=tiny.TinySet(),
        loss_fn=tiny.pixel_loss,
        transform=tiny.augment,
        **kwargs,
    )
    return {k: v.clone() for k, v in model.state_dict().items()}


class Killed(Exception):
    pass


def _kill_at(iteration: int):
    def hook(i: int) -> None:
        if i == iteration:
            raise Killed

    return hook


def _weights_eval(model):
    """An evaluation whose score follows the weights and that draws from the global RNGs."""
    torch.rand(5), torch.randn(3)
    return {"mIoU": float(model.head.class_embed.bias.sum().abs()), "aAcc": 0.9}


def _eval_fn(values):
    """An evaluation that also draws from the global RNGs (it must not disturb training)."""
    calls = iter(values)

    def evaluate(model):
        assert not model.training
        torch.rand(5), torch.randn(3)
        return {"mIoU": next(calls), "aAcc": 0.9}

    return evaluate


@pytest.fixture
def straight(tiny, tmp_path):
    """The uninterrupted run's final weights."""
    return _run(tiny, tmp_path / "straight", evaluate_fn=_weights_eval)


@pytest.mark.parametrize("kill_at", [1, 3, 5, 7])
def test_killed_and_resumed_run_ends_bitwise_equal(tiny, tmp_path, straight, kill_at):
    work = tmp_path / "killed"
    with pytest.raises(Killed):
        _run(tiny, work, evaluate_fn=_weights_eval, on_iteration=_kill_at(kill_at))
    # The resumed model starts from other weights: everything must come from the checkpoint.
    resumed = _run(tiny, work, init_seed=99, resume=True, evaluate_fn=_weights_eval)
    assert tiny.state_equal(resumed, straight)
    # Iterations after the checkpoint were logged twice; the resumed log keeps one copy.
    steps = [(r["kind"], r["iter"]) for r in read_log(work / "log.jsonl")]
    assert len(steps) == len(set(steps)) and ("train", ITERS) in steps


def test_kill_during_a_save_keeps_the_previous_checkpoint(tiny, tmp_path, straight, monkeypatch):
    work = tmp_path / "killed"
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):  # dies renaming the third training state (iteration 6)
        calls.append(Path(dst).name)
        if calls.count("last.state.pt") == 3:
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", dying_replace)  # the rename of every save
    with pytest.raises(Killed):
        _run(tiny, work, evaluate_fn=_weights_eval)
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    assert calls[-1] == "last.state.pt"
    assert ckpt.load_state(work / "last.state.pt")["iteration"] == 3
    resumed = _run(tiny, work, init_seed=99, resume=True, evaluate_fn=_weights_eval)
    assert tiny.state_equal(resumed, straight)
    assert not list(work.glob(".*.tmp"))


_SCRIPT = """
import os, signal, sys
import torch
sys.path.insert(0, {tests!r})
import tiny
from segvit.engine.train import train

work, resume, kill_at = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
def hook(i):
    if i == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
torch.manual_seed(1 if not resume else 99)
cfg = tiny.make_cfg(variant="tiny", dataset="demo", work_dir=work, iters={iters}, batch=4, lr=1e-2,
                  warmup_iters=3, log_interval=2, eval_interval=100, checkpoint_interval=3,
                  num_workers=0, device="cpu", resume=resume)
train(cfg, model=tiny.TinySegmentor(), train_set=tiny.TinySet(), loss_fn=tiny.pixel_loss,
      transform=tiny.augment, on_iteration=hook)
"""


def test_sigkilled_process_resumes_to_the_same_weights(tiny, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent), iters=ITERS))
    work = tmp_path / "work"

    def launch(resume: str, kill_at: int, into: Path = work) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(script), str(into), resume, str(kill_at)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    killed = launch("0", 5)
    assert killed.returncode == -signal.SIGKILL
    assert ckpt.load_state(work / "last.state.pt")["iteration"] == 3
    finished = launch("1", -1)
    assert finished.returncode == 0, finished.stderr
    # The uninterrupted run in a fresh process too: bitwise equality must not hang on this
    # process's global state (thread count, ...) that earlier tests may have changed.
    assert launch("0", -1, tmp_path / "straight").returncode == 0
    straight, _ = ckpt.load_weights(tmp_path / "straight" / "last.pt")
    weights, meta = ckpt.load_weights(work / "last.pt")
    assert meta["iteration"] == ITERS
    assert tiny.state_equal(weights, straight)


def test_workers_do_not_change_the_data_order_or_augmentation(tiny, tmp_path):
    without = _run(tiny, tmp_path / "w0", num_workers=0, iters=4, eval_interval=100)
    with_workers = _run(tiny, tmp_path / "w2", num_workers=2, iters=4, eval_interval=100)
    assert tiny.state_equal(without, with_workers)


def test_gradient_accumulation_matches_the_full_batch(tiny, tmp_path):
    # Dropout draws differ between one batch of 4 and two of 2, so compare without it.
    torch.manual_seed(1)
    full, accumulated = tiny.TinySegmentor(), tiny.TinySegmentor()
    full.backbone.drop.p = accumulated.backbone.drop.p = 0.0
    accumulated.load_state_dict(full.state_dict())

    def loss_fn(output, labels):  # mean over all pixels, so micro-batch means average exactly
        logits = F.interpolate(output.mask_logits, size=labels.shape[-2:], mode="bilinear")
        ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
        return {"loss": ce.sum() / labels.numel() + output.class_logits.pow(2).mean()}

    common = dict(model=None, train_set=tiny.TinySet(), loss_fn=loss_fn)
    for model, work, device_batch in ((full, "full", 4), (accumulated, "acc", 2)):
        cfg = _cfg(tmp_path / work, device_batch=device_batch, iters=3, eval_interval=100)
        train(cfg, **(common | {"model": model}))
    config = json.loads((tmp_path / "acc" / "config.json").read_text())
    assert (config["per_forward_batch"], config["accumulation"]) == (2, 2)
    for (name, a), b in zip(
        full.state_dict().items(), accumulated.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    calls = []

    def loss_fn(output, labels):
        terms = tiny.pixel_loss(output, labels)
        calls.append(1)
        if len(calls) == 5:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    torch.manual_seed(1)
    model, after_4 = tiny.TinySegmentor(), {}

    def snapshot(i):
        if i == 4:
            after_4.update({k: v.clone() for k, v in model.state_dict().items()})

    with pytest.raises(SegvitError, match=r"iteration 5: the loss is nan.*iteration 3\)"):
        train(
            _cfg(tmp_path),
            model=model,
            train_set=tiny.TinySet(),
            loss_fn=loss_fn,
            on_iteration=snapshot,
        )
    assert ckpt.load_state(tmp_path / "last.state.pt")["iteration"] == 3
    # The bad step never reached the weights: the model still holds iteration 4's.
    assert tiny.state_equal(model.state_dict(), after_4)


def test_log_config_and_best_weights(tiny, tmp_path):
    torch.manual_seed(1)
    model = tiny.TinySegmentor()
    result = train(
        _cfg(tmp_path, iters=12),
        model=model,
        train_set=tiny.TinySet(),
        loss_fn=tiny.pixel_loss,
        evaluate_fn=_eval_fn([0.3, 0.6, 0.4]),
    )
    records = read_log(tmp_path / "log.jsonl")
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["iter"] for r in steps] == [2, 4, 6, 8, 10, 12]
    assert {"loss", "loss_ce", "loss_reg", "lr", "lr_head", "time", "memory_mb"} <= set(steps[0])
    assert math.isclose(steps[0]["lr_head"], 10 * steps[0]["lr"])
    evals = [(r["iter"], r["mIoU"]) for r in records if r["kind"] == "eval"]
    assert evals == [(4, 0.3), (8, 0.6), (12, 0.4)]
    assert (result.best_metric, result.best_weights) == (0.6, tmp_path / "best.pt")
    _, best_meta = ckpt.load_weights(tmp_path / "best.pt")
    assert best_meta == {"variant": "tiny", "dataset": "demo", "iteration": 8, "mIoU": 0.6}
    last, last_meta = ckpt.load_weights(tmp_path / "last.pt")
    assert last_meta["iteration"] == 12 and last_meta["mIoU"] == 0.4
    assert tiny.state_equal(last, model.state_dict())
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["iters"], config["batch"], config["world_size"]) == (12, 4, 1)


def test_refuses_to_overwrite_a_run_and_to_resume_a_different_one(tiny, tmp_path):
    _run(tiny, tmp_path, iters=3, checkpoint_interval=3, eval_interval=100)
    with pytest.raises(SegvitError, match="already holds a training state"):
        _run(tiny, tmp_path, iters=3)
    with pytest.raises(SegvitError, match="lr was 0.01, now 0.02"):
        _run(tiny, tmp_path, iters=3, resume=True, lr=2e-2)


def test_resume_with_nothing_saved_starts_from_scratch(tiny, tmp_path, straight):
    assert tiny.state_equal(_run(tiny, tmp_path, resume=True, evaluate_fn=_weights_eval), straight)


def test_bad_batch_split_and_config_values_are_clear_errors(tiny, tmp_path):
    with pytest.raises(SegvitError, match="device_batch 3 does not divide"):
        _run(tiny, tmp_path, device_batch=3)
    with pytest.raises(SegvitError, match="checkpoint_interval must be > 0, got 0"):
        _cfg(tmp_path, checkpoint_interval=0)
    with pytest.raises(SegvitError, match="expected a 'loss' entry"):
        train(
            _cfg(tmp_path / "b"),
            model=tiny.TinySegmentor(),
            train_set=tiny.TinySet(),
            loss_fn=lambda out, labels: {"ce": out.mask_logits.sum()},
        )


def test_a_work_dir_that_is_a_file_is_refused(tiny, tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a folder")
    with pytest.raises(SegvitError, match="--work-dir .*taken: a file is there; expected a folder"):
        train(_cfg(path), model=tiny.TinySegmentor(), train_set=tiny.TinySet(),
              loss_fn=tiny.pixel_loss)  # fmt: skip
    assert path.read_text() == "not a folder"


def test_evaluation_does_not_change_the_training(tiny, tmp_path, straight):
    assert tiny.state_equal(_run(tiny, tmp_path, eval_interval=100), straight)


def test_evaluation_must_return_the_best_metric_as_a_number(tiny, tmp_path):
    torch.manual_seed(1)
    kwargs = dict(model=tiny.TinySegmentor(), train_set=tiny.TinySet(), loss_fn=tiny.pixel_loss)
    result = train(
        _cfg(tmp_path / "a", iters=4), evaluate_fn=lambda m: {"mIoU": np.float32(0.25)}, **kwargs
    )
    assert result.best_metric == 0.25
    with pytest.raises(SegvitError, match="expected a number under 'mIoU'"):
        train(_cfg(tmp_path / "b", iters=4), evaluate_fn=lambda m: {"aAcc": 0.9}, **kwargs)


@pytest.mark.parametrize("resume", [False, True])
def test_a_finished_run_without_its_state_is_not_overwritten(tiny, tmp_path, resume):
    """Deleting last.state.pt to save disk leaves weights and log that a new run must not
    replace unless asked."""
    _run(tiny, tmp_path, iters=4, evaluate_fn=_weights_eval)
    (tmp_path / "last.state.pt").unlink()
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(SegvitError, match="holds a run .*best.pt.* no last.state.pt.*--overwrite"):
        _run(tiny, tmp_path, iters=4, resume=resume, init_seed=2)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == kept


def test_overwrite_replaces_every_file_of_the_previous_run(tiny, tmp_path, straight):
    _run(tiny, tmp_path, iters=4, seed=5, evaluate_fn=_weights_eval)
    (tmp_path / "eval_demo_ss.json").write_text("{}")  # a score of the old weights
    # A run with other settings may replace it; what it leaves is its own, alone.
    weights = _run(tiny, tmp_path, overwrite=True, evaluate_fn=_weights_eval)
    assert tiny.state_equal(weights, straight)
    assert not (tmp_path / "eval_demo_ss.json").exists()
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 0
    assert [r["iter"] for r in read_log(tmp_path / "log.jsonl") if r["kind"] == "eval"] == [4, 8]
    with pytest.raises(SegvitError, match="--resume continues the run, --overwrite replaces"):
        _run(tiny, tmp_path, resume=True, overwrite=True)


def test_resuming_a_finished_run_whose_last_pt_was_deleted_writes_it_again(tiny, tmp_path):
    torch.manual_seed(1)
    model = tiny.TinySegmentor()
    _run(tiny, tmp_path, iters=4, evaluate_fn=_weights_eval)
    final = ckpt.load_weights(tmp_path / "last.pt")[0]
    (tmp_path / "last.pt").unlink()
    (tmp_path / "best.pt").unlink()
    result = train(
        _cfg(tmp_path, iters=4, resume=True),
        model=model, train_set=tiny.TinySet(), loss_fn=tiny.pixel_loss,
        evaluate_fn=_weights_eval,
    )  # fmt: skip
    # Every path the result names exists; best.pt cannot be rebuilt and is not named.
    assert result.last_weights.is_file() and result.best_weights is None
    assert tiny.state_equal(ckpt.load_weights(result.last_weights)[0], final)


def test_a_second_training_into_a_held_work_dir_is_refused(tiny, tmp_path):
    from segvit.engine.train import LOCK_NAME

    held = r"\.train\.lock: a training into .* is already running \(pid"
    with (
        fileio.exclusive_lock(tmp_path / LOCK_NAME, "a training into it"),
        pytest.raises(SegvitError, match=held),
    ):
        _run(tiny, tmp_path, iters=2, resume=True)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "config.json").exists()
    _run(tiny, tmp_path, iters=2, resume=True)  # the lock dies with its holder


def _broken_set(tiny):
    class Broken(tiny.TinySet):
        def __getitem__(self, index):
            raise SegvitError(f"image_{index}.jpg: not a readable image (Truncated File Read)")

    return Broken()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_sample_is_the_same_one_line_with_or_without_workers(tiny, tmp_path, workers):
    with pytest.raises(SegvitError) as raised:
        train(_cfg(tmp_path, num_workers=workers), model=tiny.TinySegmentor(),
              train_set=_broken_set(tiny), loss_fn=tiny.pixel_loss)  # fmt: skip
    assert str(raised.value).startswith("image_") and "\n" not in str(raised.value)
    assert str(raised.value).endswith(".jpg: not a readable image (Truncated File Read)")
