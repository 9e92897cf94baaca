"""JSONL log (NaN-safe, truncated on resume, tolerant of a cut last line), windows, progress."""

import json

import numpy as np
import pytest
import torch

from segvit.engine.logging import Progress, RunLog, Window, read_log
from segvit.errors import SegvitError


def test_records_append_as_json_lines_with_nan_as_null(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    log.write({"kind": "train", "iter": 1, "loss": float("nan"), "lr": 1e-5})
    log.write({"kind": "eval", "iter": 2, "mIoU": 0.5, "per_class": [0.1, float("inf")]})
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"kind": "train", "iter": 1, "loss": None, "lr": 1e-5}
    assert json.loads(lines[1])["per_class"] == [0.1, None]
    log.write({"iter": 3, "a": np.float32(1), "t": torch.tensor(2.0), "v": torch.tensor([1, 2.0])})
    assert read_log(tmp_path / "log.jsonl")[-1] == {"iter": 3, "a": 1.0, "t": 2.0, "v": [1.0, 2.0]}


def test_truncate_drops_iterations_a_resumed_run_redoes(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    for i in (2, 4, 6):
        log.write({"kind": "train", "iter": i})
    with open(tmp_path / "log.jsonl", "a") as file:
        file.write('{"kind": "train", "it')  # the line a kill cut short
    assert [r["iter"] for r in read_log(tmp_path / "log.jsonl")] == [2, 4, 6]
    log.truncate_after(4)
    assert [r["iter"] for r in read_log(tmp_path / "log.jsonl")] == [2, 4]


def test_a_run_resumed_after_a_kill_leaves_a_log_that_reads_back_whole(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    log.write({"kind": "train", "iter": 2})
    with open(tmp_path / "log.jsonl", "a") as file:
        file.write('{"kind": "train", "it')  # the line a kill cut short
    log.truncate_after(2)
    log.write({"kind": "train", "iter": 3})
    assert [r["iter"] for r in read_log(tmp_path / "log.jsonl")] == [2, 3]


def test_any_other_bad_line_is_named(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"kind": "train", "iter": 2}\nnot json\n{"kind": "train", "iter": 4}\n')
    with pytest.raises(SegvitError, match=rf"{path}:2: not a JSON record"):
        read_log(path)
    path.write_text('{"kind": "train"}\n')
    with pytest.raises(SegvitError, match=rf"{path}:1: expected a record with an 'iter' number"):
        read_log(path)


def test_other_ranks_write_nothing(tmp_path):
    RunLog(tmp_path / "log.jsonl", enabled=False).write({"iter": 1})
    assert not (tmp_path / "log.jsonl").exists()


def test_window_averages_since_the_last_flush():
    window = Window()
    window.add({"loss": 1.0, "time": 0.5})
    window.add({"loss": 3.0, "time": 1.5})
    assert window.flush() == {"loss": 2.0, "time": 1.0}
    window.add({"loss": 5.0})
    assert window.flush() == {"loss": 5.0}


def test_plain_lines_without_a_bar_and_silence_on_other_ranks(capsys):
    record = {"kind": "train", "iter": 10, "loss": 0.5, "lr": 2e-5, "time": 0.25, "eta_s": 90}
    progress = Progress(total=100, initial=0, enabled=True, bar=False)
    progress.advance(0.5, 2e-5)
    progress.report(record, total=100)
    progress.report({"kind": "eval", "iter": 10, "mIoU": 0.4321}, total=100)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "iter 10/100  loss 0.5000  lr 2.00e-05  4.00 it/s  eta 00:01:30",
        "iter 10  mIoU 0.4321",
    ]
    quiet = Progress(total=100, initial=0, enabled=False, bar=True)
    quiet.report(record, total=100)
    assert quiet.bar is None and capsys.readouterr().err == ""


def test_bar_counts_from_the_resumed_iteration(capsys):
    progress = Progress(total=10, initial=4, enabled=True, bar=True)
    progress.advance(0.5, 1e-4)
    assert progress.bar.n == 5
    progress.close()
    assert "5/10" in capsys.readouterr().err


def test_a_label_says_whose_iterations_they_are(capsys):
    progress = Progress(total=300, initial=0, enabled=True, bar=False, label="smoke backbone")
    progress.report({"kind": "eval", "iter": 25, "mIoU": 0.5}, total=300)
    assert capsys.readouterr().err == "smoke backbone: iter 25  mIoU 0.5000\n"
    progress = Progress(total=300, initial=0, enabled=True, bar=True, label="smoke backbone")
    progress.advance(0.5, 1e-4)
    progress.close()
    assert "smoke backbone:" in capsys.readouterr().err


@pytest.mark.parametrize("ci", ["true", "1"])
def test_ci_disables_the_bar(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    assert Progress(total=10, initial=0, enabled=True).bar is None
