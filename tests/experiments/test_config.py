"""The experiment YAML loader: every shipped file loads; bad files fail naming file and key."""

from pathlib import Path

import pytest

from segvit.errors import SegvitError
from segvit.experiments.config import load_figure, load_table
from segvit.modeling.variants import VARIANTS

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("table*.yaml")), ids=lambda p: p.stem)
def test_shipped_tables_load_and_name_real_variants(path):
    table = load_table(path)
    assert table.table == path.stem
    assert table.rows
    for row in table.rows:
        assert row.variant is None or row.variant in VARIANTS


def test_table8_carries_the_paper_numbers():
    table = load_table(EXPERIMENTS / "table8.yaml")
    assert [r.variant for r in table.rows] == [
        "setr_b", "atm_single_b", "naive_shrunk_b", "segvit_shrunk_b"
    ]  # fmt: skip
    assert [r.paper["gflops"] for r in table.rows] == [107.3, 115.8, 74.1, 97.1]
    assert table.inference == ["ss"]


def test_bounds_stay_strings():
    row = load_table(EXPERIMENTS / "table1.yaml").rows[0]
    assert row.paper["gflops"] == ">250"


def test_every_shipped_row_has_its_own_slug():
    row = load_table(EXPERIMENTS / "table1.yaml").rows[5]
    assert (row.name, row.slug) == ("SegViT, ViT-B", "segvit-vit-b")


def test_figure4_loads():
    figure = load_figure(EXPERIMENTS / "figure4.yaml")
    assert (figure.source, figure.x, figure.y) == ("table1", "gflops", "miou_ss")


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


GOOD_ROW = "{name: a, variant: segvit_b, dataset: ade20k, paper: {miou_ss: 1.0}}"


@pytest.mark.parametrize(
    "text, message",
    [
        (f"table: bad\ncaption: c\nmetrics: [miou_ss]\nrows: [{GOOD_ROW}]\ncolour: red\n",
         r"bad\.yaml: colour: unknown key"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: segvit_b, dataset: ade20k, crop: big}]\n",
         r"bad\.yaml: rows\[0\]\.crop: expected"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: x, datset: ade20k}]\n",
         r"bad\.yaml: rows\[0\]\.datset: unknown key"),
        ("table: bad\ncaption: c\nmetrics: [accuracy]\nrows: []\n",
         r"bad\.yaml: metrics\[0\]: 'accuracy' is not one of"),
        ("table: bad\nmetrics: [miou_ss]\nrows: []\n", r"bad\.yaml: caption: missing"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: null, dataset: ade20k, paper: {gflops: 3}}]\n",
         r"rows\[0\]\.paper: \['gflops'\] not among the table's metrics"),
        ("- just\n- a list\n", r"bad\.yaml: top level: expected a mapping"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: segvit_b, dataset: ade20k, crop: -16}]\n",
         r"bad\.yaml: rows\[0\]\.crop: -16: expected a positive multiple of 16"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: segvit_b, dataset: ade20k, crop: 0}]\n",
         r"bad\.yaml: rows\[0\]\.crop: 0: expected a positive multiple of 16"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: segvit_x, dataset: ade20k}]\n",
         r"bad\.yaml: rows\[0\]\.variant: unknown variant 'segvit_x'"),
        ("table: bad\ncaption: c\nmetrics: [miou_ss]\n"
         "rows: [{name: a, variant: null, dataset: ade20k, paper: {miou_ss: forty}}]\n",
         r"bad\.yaml: rows\[0\]\.paper\.miou_ss: 'forty': expected a number, a bound"),
        (f"table: bad\ncaption: c\nmetrics: [miou_ss]\nrows: [{GOOD_ROW}, "
         "{name: 'A!', variant: segvit_l, dataset: ade20k}]\n",
         r"bad\.yaml: rows\[1\] 'A!' has the name of rows\[0\] \(both 'a'\)"),
        ("table: [unclosed\n", r"bad\.yaml: not valid YAML"),
    ],
)  # fmt: skip
def test_bad_files_name_file_and_key(tmp_path, text, message):
    with pytest.raises(SegvitError, match=message):
        load_table(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(SegvitError, match="no such experiment file"):
        load_table(tmp_path / "table42.yaml")
