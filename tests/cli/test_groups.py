"""`prepare` and `plot`: one sub-command per job, each with only its options; the old
spellings (`segvit prepare NAME`, `segvit plot FIGURE`) reach the default sub-command."""

import typer

from segvit.cli import app


def options(*path: str) -> set[str]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {opt for param in command.params for opt in param.opts if opt.startswith("--")}


def test_each_sub_command_has_only_its_own_options():
    assert {"--src", "--root", "--preview"} == options("prepare", "dataset") - {"--help"}
    folder = options("prepare", "folder")
    assert {"--images", "--labels", "--out", "--classes", "--crop"} <= folder
    assert not {"--src", "--root"} & folder
    assert options("plot", "figure") - {"--help"} == {"--results", "--experiments"}
    assert options("plot", "curves") - {"--help"} == {"--out", "--results"}


def test_the_old_spellings_reach_the_default_sub_command(cli, tmp_path):
    code, out, err = cli("prepare", "demo", "--root", tmp_path / "data")
    assert code in (0, None), err
    assert "demo ready at" in out and (tmp_path / "data" / "demo").is_dir()
    code, _, err = cli("plot", "figure4", "--results", tmp_path / "results")
    assert code == 1 and "table1.csv not found" in err  # figure4 is drawn from table1
    code, _, err = cli("prepare", "folder", "--images", tmp_path)
    assert code == 2 and "Missing option '--labels'" in err
