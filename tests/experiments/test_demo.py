"""The demo draws the four Table 8 rows' training curves into results/smoke/curves.png
(the rows' training itself is the demo's; here their logs are written by hand)."""

import json

from segvit.analysis import curves
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
