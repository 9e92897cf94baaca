"""The result table writer keeps paper and measured columns apart, and the plot is drawn."""

import re
from pathlib import Path

import pandas as pd
import pytest

from segvit.analysis import hardware
from segvit.engine.recipe import get_recipe
from segvit.experiments.config import load_figure, load_table
from segvit.experiments.plot import plot_figure
from segvit.experiments.tables import (
    NOT_IMPLEMENTED,
    RowResult,
    build_frame,
    machine_label,
    write_table,
)

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


def test_paper_and_measured_never_mixed(tmp_path):
    table = load_table(EXPERIMENTS / "table8.yaml")
    results = [
        RowResult("done", {"gflops": 107.4, "miou_ss": 40.0}),
        RowResult("not run"),
        RowResult("done", {"gflops": 73.9}),
        RowResult("done", {"gflops": 96.9, "miou_ss": 51.0}),
    ]
    frame = build_frame(table, results, recipe=get_recipe("paper"), machine="test")
    assert list(frame["paper_gflops"]) == [107.3, 115.8, 74.1, 97.1]
    assert frame["gflops"].tolist()[0] == 107.4 and pd.isna(frame["gflops"].tolist()[1])
    assert pd.isna(frame["miou_ss"][1]) and pd.isna(frame["miou_ss"][2])  # nothing invented
    assert frame["diff_gflops"][0] == 0.1
    assert frame["diff_miou_ss"][3] == 1.0
    md = write_table(table, frame, tmp_path, note="test note")
    csv = pd.read_csv(tmp_path / "table8.csv")
    assert {"paper_miou_ss", "miou_ss", "diff_miou_ss", "status", "preset", "machine"} <= set(
        csv.columns
    )
    text = md.read_text()
    assert "| Single / SETR |" in text and "+0.10" in text and "test note" in text


def test_smoke_miou_is_not_compared_with_the_paper():
    table = load_table(EXPERIMENTS / "table8.yaml")
    results = [RowResult("done", {"gflops": 107.4, "miou_ss": 90.0})] + [RowResult("not run")] * 3
    frame = build_frame(table, results, recipe=get_recipe("smoke"), machine="test")
    assert frame["diff_gflops"][0] == 0.1  # GFLOPs are always counted at the paper's scale
    assert pd.isna(frame["diff_miou_ss"][0])  # demo-data mIoU says nothing about ADE20K


def test_unimplemented_rows_say_so():
    table = load_table(EXPERIMENTS / "table6.yaml")
    frame = build_frame(
        table, [RowResult(NOT_IMPLEMENTED)] * 3, recipe=get_recipe("paper"), machine="m"
    )
    assert set(frame["status"]) == {NOT_IMPLEMENTED}
    assert frame["miou_ss"].isna().all() and frame["gflops"].isna().all()


def test_figure4_is_written(tmp_path):
    table = load_table(EXPERIMENTS / "table1.yaml")
    results = [RowResult(NOT_IMPLEMENTED)] * len(table.rows)
    results[5] = RowResult("done", {"gflops": 120.7})
    frame = build_frame(table, results, recipe=get_recipe("paper"), machine="m")
    out = plot_figure(load_figure(EXPERIMENTS / "figure4.yaml"), frame, tmp_path / "f4.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_figure4_reads_back_a_csv_with_bounds(tmp_path):
    """Paper columns mixing numbers and bounds (">250") come back from CSV as strings."""
    table = load_table(EXPERIMENTS / "table1.yaml")
    results = [RowResult(NOT_IMPLEMENTED)] * len(table.rows)
    frame = build_frame(table, results, recipe=get_recipe("paper"), machine="m")
    frame.to_csv(tmp_path / "table1.csv", index=False)
    reread = pd.read_csv(tmp_path / "table1.csv")
    assert not pd.api.types.is_numeric_dtype(reread["paper_gflops"])  # the case being tested
    out = plot_figure(load_figure(EXPERIMENTS / "figure4.yaml"), reread, tmp_path / "f4.png")
    assert out.stat().st_size > 10_000


# How `machine_label` names a machine: "cpu (MODEL, N threads), N cores" or "cuda (NAME) xN".
MACHINE = re.compile(r"cpu \([^()]+, \d+ threads?\), \d+ cores|cuda \([^()]+\) x\d+")


def test_the_machine_label_and_every_committed_table_share_one_format():
    """A rerun on the same machine must not rewrite a committed table only because the
    machine string changed format (it once read "x86_64 CPU, 2 cores")."""
    assert MACHINE.fullmatch(machine_label())
    results = Path(__file__).parents[2] / "results"
    labels = {
        label
        for csv in results.rglob("*.csv")
        if "machine" in (frame := pd.read_csv(csv)).columns
        for label in frame["machine"].dropna()
    }
    assert labels and all(MACHINE.fullmatch(label) for label in labels), labels


# Names as vendors write them: trademark marks, clocks, ARM boards' "(v7l)", nothing at all.
CPU_NAMES = [
    "AMD EPYC",
    "Intel(R) Xeon(R) Processor",
    "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz",
    "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz",
    "Intel\u00ae Xeon\u00ae Platinum 8480+",
    "ARMv7 Processor rev 4 (v7l)",
    "Neoverse-N1",
    "Apple M2 Pro",
    "",
    " (weird) name (( ",
]


@pytest.mark.parametrize("name", CPU_NAMES)
@pytest.mark.parametrize("threads", [1, 2, 64])
def test_every_cpu_name_gives_a_label_of_the_table_format(name, threads):
    """The label is a pure function of the names: any machine's has the format the committed
    tables are checked against, whatever its CPU is called."""
    label = hardware.machine_label(cpu=name, threads=threads, cores=8, gpu=None, gpus=0)
    assert MACHINE.fullmatch(label), label


@pytest.mark.parametrize("name", ["NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-32GB (rev a1)", ""])
def test_every_gpu_name_gives_a_label_of_the_table_format(name):
    label = hardware.machine_label(cpu="Intel(R) Xeon(R)", threads=2, cores=8, gpu=name, gpus=4)
    assert MACHINE.fullmatch(label) and label.endswith(" x4"), label


def test_figure4_draws_only_segvit_in_its_colour(tmp_path, monkeypatch):
    """The comparison rows have variants too (dpt_b, setr_mla_b...): they are other methods."""
    from matplotlib.axes import Axes

    from segvit.experiments import plot

    drawn = []
    scatter = Axes.scatter

    def recording(self, x, y, *args, **kwargs):
        if not isinstance(x, list):  # a point, not a legend entry
            drawn.append((x, kwargs.get("color")))
        return scatter(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", recording)
    table = load_table(EXPERIMENTS / "table1.yaml")
    results = [RowResult(NOT_IMPLEMENTED)] * len(table.rows)
    frame = build_frame(table, results, recipe=get_recipe("paper"), machine="m")
    plot_figure(load_figure(EXPERIMENTS / "figure4.yaml"), frame, tmp_path / "f4.png")
    colours = dict(drawn)
    assert colours[120.9] == colours[637.9] == colours[373.5] == plot.SEGVIT  # SegViT rows
    assert (
        colours[219.8] == colours[113.5] == colours[129.6] == plot.OTHERS
    )  # DPT, SETR-MLA, Segmenter
