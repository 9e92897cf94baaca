"""`segvit demo` (run_demo): the demo set, the smoke backbone, Table 8 with the smoke preset,
then the four rows' training curves (results/smoke/curves.png) and the QU probe; the costly
steps are stand-ins here, the rows' logs written by hand."""

import json
from types import SimpleNamespace

from rich.console import Console

from segvit.analysis import curves
from segvit.experiments import demo
from segvit.experiments.demo import demo_curves, demo_sweep


def test_the_demo_draws_the_four_rows_curves(tmp_path, monkeypatch):
    slugs = ["single-setr", "single-atm", "naive-shrunk-atm", "shrunk-atm"]
    for i, slug in enumerate(slugs):
        work = tmp_path / "runs" / "table8" / "smoke" / slug / "train"
        work.mkdir(parents=True)
        records = [{"kind": "train", "iter": 5, "loss": 1.0 + i, "lr": 1e-3},
                   {"kind": "eval", "iter": 5, "mIoU": 10.0 * i}]  # fmt: skip
        (work / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    drawn = {}
    plot_curves = curves.plot_curves

    def spy(runs, out):
        drawn["labels"] = [r.label for r in runs]
        return plot_curves(runs, out)

    monkeypatch.setattr(curves, "plot_curves", spy)
    sweep = demo_sweep(data_root=tmp_path / "data", results=tmp_path / "results",
                       runs=tmp_path / "runs")  # fmt: skip
    assert demo_curves(sweep) == tmp_path / "results" / "smoke" / "curves.png"
    assert drawn["labels"] == slugs  # the table's row order
    assert (tmp_path / "results" / "smoke" / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_run_demo_prepares_pretrains_sweeps_table8_then_draws_and_probes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "prepare_dataset", lambda spec, src, root: calls.append(spec.name))
    monkeypatch.setattr(demo, "smoke_backbone", lambda root: calls.append("backbone") or "w")

    def sweep_tables(sweep, console, on_table):
        calls.append((sweep.table_names, sweep.recipe.name, sweep.stages))
        weights = sweep.row_files(sweep.load_tables()[0], sweep.load_tables()[0].rows[3]).weights
        weights.parent.mkdir(parents=True)
        weights.write_bytes(b"w")  # the Shrunk row trained
        return [sweep.out_dir / "table8.md"]

    monkeypatch.setattr(demo, "reproduce_tables", sweep_tables)
    monkeypatch.setattr(demo, "demo_curves", lambda sweep: sweep.out_dir / "curves.png")
    evidence = SimpleNamespace(markdown=lambda iters: f"probe after {iters} iterations\n")
    monkeypatch.setattr(demo, "shrunk_evidence", lambda weights, root: evidence)
    done = demo.run_demo(data_root=tmp_path / "data", results=tmp_path / "results",
                         runs=tmp_path / "runs", console=Console(quiet=True))  # fmt: skip
    assert calls == ["demo", "backbone", (["table8"], "smoke", ("flops", "train", "eval"))]
    out = tmp_path / "results" / "smoke"
    assert (done.table, done.curves, done.qu_probe) == (
        out / "table8.md", out / "curves.png", out / "qu_probe.md",
    )  # fmt: skip
    assert done.qu_probe.read_text() == "probe after 150 iterations\n"
    assert [name for name, _ in done.seconds] == [
        "demo set", "smoke backbone", "table 8 rows", "total",
    ]  # fmt: skip
