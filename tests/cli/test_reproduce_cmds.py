"""`segvit reproduce`, `tables` and `plot` through the real entry point, on a tiny sweep."""

import subprocess
import sys

import pandas as pd

TINY_TABLE = """\
table: {name}
caption: "a tiny table"
metrics: [gflops]
rows:
  - {{name: "SETR 64", variant: setr_b, dataset: demo, crop: 64, paper: {{gflops: 1.0}}}}
  - {{name: "a peer", variant: null, dataset: ade20k, paper: {{gflops: 2.0}}}}
"""


def _experiments(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    for name in ("table1", "table2"):
        (folder / f"{name}.yaml").write_text(TINY_TABLE.format(name=name))
    return folder


def test_several_tables_in_one_call(cli, tmp_path):
    experiments = _experiments(tmp_path)
    code, out, err = cli(
        "reproduce", "table1", "table2", "--only", "flops", "--experiments", experiments,
        "--results", tmp_path / "results", "--runs", tmp_path / "runs",
    )  # fmt: skip
    assert code in (0, None), err
    for name in ("table1", "table2"):
        frame = pd.read_csv(tmp_path / "results" / f"{name}.csv")
        assert frame.loc[0, "gflops"] > 0 and frame.loc[0, "status"] == "done"
        assert frame.loc[1, "status"] == "not implemented"
        assert f"wrote {tmp_path / 'results' / name}.md" in out.replace("\n", "")


def test_an_unknown_table_or_stage_is_one_line(cli, tmp_path):
    experiments = _experiments(tmp_path)
    code, _, err = cli("reproduce", "table9", "--experiments", experiments)
    assert code == 1 and "no experiment 'table9'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("reproduce", "table1", "--only", "bake", "--experiments", experiments)
    assert code == 1 and "--only bake: expected one of flops, train, eval" in err
    code, _, err = cli("reproduce", "table1", "--experiments", tmp_path / "missing")
    assert code == 1 and "--experiments" in err and "no such folder" in err
    (tmp_path / "taken").write_text("")
    code, out, err = cli("reproduce", "table1", "--only", "flops", "--experiments", experiments,
                         "--results", tmp_path / "taken")  # fmt: skip
    assert code == 1 and "--results" in err and "a file is there" in err and not out


def test_the_shipped_experiments_are_found_without_a_source_checkout():
    from pathlib import Path

    import segvit
    from segvit.experiments.sweep import EXPERIMENTS, experiment_file

    assert experiment_file("table8").parent == EXPERIMENTS
    assert EXPERIMENTS.resolve().is_relative_to(Path(segvit.__file__).parent)  # package data


def test_the_cli_answers_without_importing_torch():
    code = "import sys, segvit.cli; print('torch' in sys.modules, 'timm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False False", result.stderr
