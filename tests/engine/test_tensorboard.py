"""`--tensorboard`: the records of log.jsonl as TensorBoard scalars (when tensorboard is
installed), and one line naming the extra to install when it is not."""

import pytest
import torch

from segvit.engine import logging as run_logging
from segvit.engine.logging import RunLog, read_log
from segvit.engine.train import train
from segvit.errors import SegvitError


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in `log_dir`'s event files, read by tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, pytest.approx(e.value)) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def test_without_tensorboard_the_option_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(run_logging, "tensorboard_available", lambda: False)
    with pytest.raises(SegvitError, match=r"pip install 'segvit\[tensorboard\]'"):
        RunLog(tmp_path / "log.jsonl", tensorboard=True)
    RunLog(tmp_path / "log.jsonl", enabled=False, tensorboard=True)  # other ranks: no check
    RunLog(tmp_path / "log.jsonl").write({"kind": "train", "iter": 1, "loss": 1.0})
    assert not (tmp_path / "tensorboard").exists()


def test_the_train_command_refuses_before_building_anything(monkeypatch, tmp_path, capsys):
    from segvit.cli import main

    monkeypatch.setattr(run_logging, "tensorboard_available", lambda: False)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as done:
        main(["train", "setr_b", "--preset", "smoke", "--tensorboard", "--work-dir", str(run),
              "--data-root", str(tmp_path / "none")])  # fmt: skip
    assert done.value.code == 1 and not run.exists()
    err = capsys.readouterr().err
    assert "segvit[tensorboard]" in err and len(err.strip().splitlines()) == 1


def test_records_become_scalars_tagged_by_mode(tmp_path):
    pytest.importorskip("tensorboard")
    log = RunLog(tmp_path / "log.jsonl", tensorboard=True)
    log.truncate_after(0)
    log.write({"kind": "train", "iter": 2, "loss": 1.5, "lr": 1e-3, "lr_head": 1e-2})
    log.write({"kind": "eval", "iter": 2, "mIoU": 12.5, "IoU": [1.0, 2.0], "flag": True})
    log.write({"kind": "train", "iter": 4, "loss": float("nan"), "lr": 5e-4, "lr_head": 5e-3})
    got = scalars(tmp_path / "tensorboard")
    assert got == {
        "train/loss": [(2, 1.5)],  # NaN is null in log.jsonl and left out here too
        "train/lr": [(2, 1e-3), (4, 5e-4)],
        "train/lr_head": [(2, 1e-2), (4, 5e-3)],
        "val/mIoU": [(2, 12.5)],
    }


def test_a_resumed_run_replaces_the_events_it_logs_again(tmp_path):
    pytest.importorskip("tensorboard")
    first = RunLog(tmp_path / "log.jsonl", tensorboard=True)
    first.truncate_after(0)
    for i in (2, 4, 6):
        first.write({"kind": "train", "iter": i, "loss": float(i)})
    first.board.writer.close()  # killed after iteration 6; resumed from the state at 4
    resumed = RunLog(tmp_path / "log.jsonl", tensorboard=True)
    resumed.truncate_after(4)
    resumed.write({"kind": "train", "iter": 6, "loss": 60.0})
    assert scalars(tmp_path / "tensorboard")["train/loss"] == [(2, 2.0), (4, 4.0), (6, 60.0)]


def test_training_writes_the_same_iterations_as_log_jsonl(tiny, tmp_path):
    pytest.importorskip("tensorboard")
    torch.manual_seed(0)
    cfg = tiny.make_cfg(
        variant="tiny", work_dir=str(tmp_path), iters=6, batch=2, lr=1e-2, log_interval=2,
        eval_interval=3, checkpoint_interval=6, device="cpu", num_workers=0, tensorboard=True,
    )  # fmt: skip
    train(cfg, model=tiny.TinySegmentor(), train_set=tiny.TinySet(), loss_fn=tiny.pixel_loss,
          evaluate_fn=lambda net: {"mIoU": 0.5})  # fmt: skip
    records = read_log(tmp_path / "log.jsonl")
    got = scalars(tmp_path / "tensorboard")
    steps = [(r["iter"], pytest.approx(r["loss"])) for r in records if r["kind"] == "train"]
    assert got["train/loss"] == steps and [s for s, _ in steps] == [2, 4, 6]
    assert [s for s, _ in got["val/mIoU"]] == [3, 6]
    assert {"train/loss_ce", "train/lr", "train/lr_head", "train/grad_norm"} <= set(got)
