"""Rows served by released checkpoints: `segvit reproduce release` and `--weights release`."""

from types import SimpleNamespace

import pandas as pd
import pytest

from segvit.data.catalog import get_dataset
from segvit.engine.recipe import get_recipe
from segvit.errors import SegvitError
from segvit.experiments import reproduce as sweep
from segvit.experiments.config import RowConfig, TableConfig, load_table
from segvit.experiments.released import row_release
from segvit.experiments.scoring import table_cells
from segvit.experiments.sweep import Sweep, experiment_file
from segvit.modeling.release import RELEASES

RELEASE_TABLE = load_table(experiment_file("release"))


def test_the_release_table_lists_the_registry():
    rows = RELEASE_TABLE.rows
    assert [row.release for row in rows] == list(RELEASES)
    for row in rows:
        release = RELEASES[row.release]
        assert (row.variant, row.dataset, row.crop) == (
            release.variant, release.dataset, release.crop,
        )  # fmt: skip
        assert row.paper == {
            "miou_ss": release.paper_ss, "miou_ms": release.paper_ms, "gflops": release.gflops,
        }  # fmt: skip
        assert row_release(row) is release
    assert RELEASE_TABLE.inference == ["ss", "ms"]


@pytest.fixture
def fake_flops(monkeypatch):
    """Counting seven paper-scale models takes minutes: count names instead of flops."""
    counted = []

    def experiment(row):
        return SimpleNamespace(build_model=lambda for_flops: row)

    def count(row):
        counted.append(row.name)
        return SimpleNamespace(gflops=RELEASES[row.release].gflops + 0.01)

    monkeypatch.setattr(sweep, "flops_experiment", experiment)
    monkeypatch.setattr(sweep, "count_flops", count)
    return counted


def _run(tmp_path, table=RELEASE_TABLE, *, train_fn=None, eval_fn=None,
         release_eval_fn=None, **kwargs):  # fmt: skip
    chosen = Sweep(get_recipe("paper"), results=tmp_path / "results", runs_dir=tmp_path / "runs",
                   data_root=tmp_path / "data", **kwargs)  # fmt: skip
    md = sweep.reproduce(table, chosen, train_fn=train_fn, eval_fn=eval_fn,
                         release_eval_fn=release_eval_fn)  # fmt: skip
    return pd.read_csv(md.with_suffix(".csv")), md.read_text()


def test_only_flops_fills_gflops_of_all_seven(tmp_path, fake_flops):
    frame, markdown = _run(tmp_path, stages=["flops"], release_eval_fn=pytest.fail)
    assert fake_flops == list(RELEASES)
    assert frame["gflops"].tolist() == [round(r.gflops + 0.01, 2) for r in RELEASES.values()]
    assert frame["diff_gflops"].tolist() == [0.01] * 7
    assert set(frame["status"]) == {"missing miou_ss, miou_ms"}
    assert "comes from the authors' checkpoints" in markdown


def test_rows_without_weights_or_data_say_how_to_get_them(tmp_path, monkeypatch, fake_flops):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "cache"))
    (tmp_path / "cache" / "release").mkdir(parents=True)
    (tmp_path / "cache" / "release" / "ade_51.3.pth").write_bytes(b"x")
    (tmp_path / "data" / "coco_stuff10k").mkdir(parents=True)
    evaluated = []

    def fake_eval(release, recipe, modes):
        evaluated.append((release.name, tuple(modes)))
        return {"miou_ss": 51.0, "miou_ms": 52.5}

    frame, _ = _run(tmp_path, release_eval_fn=fake_eval)
    status = dict(zip(frame["row"], frame["status"], strict=True))
    assert status["ade_51.3"] == "no data: segvit prepare ade20k"
    assert status["ade_54.6"] == (
        "no weights: segvit weights fetch ade_54.6; no data: segvit prepare ade20k"
    )
    assert status["COCOstuff_49.9"] == "no weights: segvit weights fetch COCOstuff_49.9"
    assert status["PC59cls_64.1"].endswith("no data: segvit prepare pascal-context")
    assert evaluated == [] and frame["gflops"].notna().all()  # the table went on

    (tmp_path / "data" / "ade" / "ADEChallengeData2016").mkdir(parents=True)
    frame, _ = _run(tmp_path, rows=["1"], release_eval_fn=fake_eval)
    assert evaluated == [("ade_51.3", ("ss", "ms"))]
    first = frame.iloc[0]
    assert first["status"] == "done (released ade_51.3)"
    assert (first["miou_ss"], first["diff_miou_ss"], first["diff_miou_ms"]) == (51.0, -0.3, -0.5)


def test_weights_release_evaluates_released_rows_and_trains_none(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "cache"))
    (tmp_path / "cache" / "release").mkdir(parents=True)
    (tmp_path / "cache" / "release" / "PC59cls_64.1.pth").write_bytes(b"x")
    (tmp_path / "data" / "VOCdevkit" / "VOC2010").mkdir(parents=True)
    monkeypatch.setattr(sweep, "count_flops", lambda model: SimpleNamespace(gflops=1.0))
    monkeypatch.setattr(sweep, "flops_experiment", lambda row: SimpleNamespace(
        build_model=lambda for_flops: None))  # fmt: skip
    table = TableConfig(
        table="table0", caption="test", metrics=["miou59_ms", "miou60_ms", "gflops"],
        rows=[
            RowConfig("SegViT, ViT-L", "segvit_l", "pascal-context", paper={"miou60_ms": 59.3}),
            RowConfig("Shrunk B", "segvit_shrunk_b", "pascal-context"),
            RowConfig("Peer", None, "pascal-context"),
        ],
    )  # fmt: skip

    def fake_eval(release, recipe, modes):
        assert release.name == "PC59cls_64.1" and list(modes) == ["ms"]
        return {"miou_ms": 65.0, "miou59_ms": 65.0, "miou60_ms": 59.0}

    frame, markdown = _run(
        tmp_path, table=table, weights="release", train_fn=pytest.fail, eval_fn=pytest.fail,
        release_eval_fn=fake_eval,
    )  # fmt: skip
    assert frame["status"].tolist() == [
        "done (released PC59cls_64.1)",
        "no released model (train it: drop --weights release)",
        "not implemented",
    ]
    assert (frame["miou59_ms"][0], frame["diff_miou60_ms"][0]) == (65.0, -0.3)
    assert frame["gflops"].tolist()[:2] == [1.0, 1.0]
    assert (tmp_path / "runs" / "table0" / "release-weights").is_dir()
    assert not (tmp_path / "runs" / "table0" / "paper").exists()  # trained rows stay apart
    assert "not from training here" in markdown


def test_unknown_weights_source_is_refused(tmp_path):
    with pytest.raises(SegvitError, match="--weights hub: expected one of train, release"):
        Sweep(get_recipe("paper"), tables=["release"], weights="hub")


@pytest.mark.parametrize(
    "results, dataset, cells",
    [
        ({"mIoU": 51.234}, "ade20k", {"miou_ss": 51.23, "miou150_ss": 51.23}),
        ({"mIoU": 59.3, "mIoU59": 65.3}, "pascal-context",
         {"miou_ss": 65.3, "miou59_ss": 65.3, "miou60_ss": 59.3}),
        ({"mIoU": 64.0}, "pascal-context-59", {"miou_ss": 64.0, "miou59_ss": 64.0}),
    ],
)  # fmt: skip
def test_pascal_context_cells_are_over_59_classes(results, dataset, cells):
    """One rule for trained rows and released files: the headline PASCAL-Context cell is the
    59-class score, whether the model has 60 classes or 59."""
    assert table_cells(results, get_dataset(dataset), "ss") == cells
