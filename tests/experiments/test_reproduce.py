"""`reproduce`: rows run once, resume after an interruption, never invent numbers."""

from pathlib import Path

import pandas as pd
import pytest

from segvit.engine.recipe import get_recipe
from segvit.errors import SegvitError
from segvit.experiments.config import RowConfig, TableConfig
from segvit.experiments.reproduce import reproduce
from segvit.experiments.sweep import Sweep, select_rows

TABLE = TableConfig(
    table="table0",
    caption="test",
    metrics=["miou_ss", "gflops"],
    rows=[
        RowConfig("A", "setr_b", "demo", crop=64, paper={"miou_ss": 40.0, "gflops": 1.0}),
        RowConfig("B", "segvit_b", "demo", crop=64, paper={"miou_ss": 50.0}),
        RowConfig("Peer", None, "demo", paper={"miou_ss": 45.0}),
    ],
)


class Runner:
    """Stand-in training and evaluation that record their calls."""

    def __init__(self, fail_on: str | None = None):
        self.trained, self.evaluated, self.fail_on = [], [], fail_on

    def train(self, row, preset, run_dir: Path) -> Path:
        if row.name == self.fail_on:
            raise KeyboardInterrupt
        self.trained.append(row.name)
        weights = run_dir / "train" / "last.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"weights")
        return weights

    def evaluate(self, row, preset, weights, modes):
        assert weights.read_bytes() == b"weights" and list(modes) == ["ss"]
        self.evaluated.append(row.name)
        return {"miou_ss": 12.5 if row.name == "A" else 33.0}


def run(tmp_path, runner, **kwargs):
    sweep = Sweep(get_recipe("smoke"), results=tmp_path / "results", runs_dir=tmp_path / "runs",
                  **kwargs)  # fmt: skip
    return reproduce(TABLE, sweep, train_fn=runner.train, eval_fn=runner.evaluate)


def test_rows_are_trained_evaluated_and_counted_once(tmp_path):
    runner = Runner()
    run(tmp_path, runner)
    assert runner.trained == ["A", "B"] and runner.evaluated == ["A", "B"]
    frame = pd.read_csv(tmp_path / "results" / "smoke" / "table0.csv")
    assert list(frame["miou_ss"][:2]) == [12.5, 33.0]
    assert frame["gflops"][0] > 0 and frame["gflops"][1] > 0  # counted for real, at crop 64
    assert frame["status"].tolist() == ["done", "done", "not implemented"]
    assert pd.isna(frame["miou_ss"][2]) and frame["paper_miou_ss"][2] == 45.0

    again = Runner()
    run(tmp_path, again)  # everything is on disk: nothing is redone
    assert again.trained == [] and again.evaluated == []
    assert pd.read_csv(tmp_path / "results" / "smoke" / "table0.csv").equals(frame)


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, Runner(fail_on="B"))
    resumed = Runner()
    run(tmp_path, resumed)
    assert resumed.trained == ["B"] and resumed.evaluated == ["B"]


def test_flops_only_leaves_accuracy_empty(tmp_path):
    runner = Runner()
    run(tmp_path, runner, stages=["flops"])
    frame = pd.read_csv(tmp_path / "results" / "smoke" / "table0.csv")
    assert runner.trained == [] and frame["miou_ss"].isna().all()
    assert frame["status"][0] == "missing miou_ss"


def test_rows_by_number_or_slug():
    assert select_rows(TABLE, ["2", "a"]) == [0, 1]
    with pytest.raises(SegvitError, match="--rows 9: no such row in table0"):
        select_rows(TABLE, ["9"])


def test_the_table_note_says_where_the_smoke_rows_started():
    from segvit.experiments.reproduce import _note
    from segvit.experiments.sweep import STAGES

    assert "150 iterations from the smoke backbone on the demo" in _note(
        get_recipe("smoke"), STAGES
    )
    assert "from a random backbone" in _note(get_recipe("smoke-scratch"), STAGES)
