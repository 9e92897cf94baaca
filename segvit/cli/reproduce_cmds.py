"""`segvit reproduce`, `segvit tables`, `segvit plot`: the paper's tables and Figure 4."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from segvit.engine.recipe import get_preset
from segvit.errors import SegvitError
from segvit.experiments.config import load_figure, load_table
from segvit.experiments.plot import plot_figure
from segvit.experiments.reproduce import STAGES
from segvit.experiments.reproduce import reproduce as run_reproduce
from segvit.experiments.tables import format_cell, gather_readme

console = Console()
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
TABLES = [f"table{i}" for i in range(1, 10)]


def _experiment(name: str, experiments: Path) -> Path:
    path = experiments / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in experiments.glob("*.yaml"))
        raise SegvitError(f"no experiment {name!r} in {experiments}; expected one of: {known}")
    return path


def reproduce(
    table: Annotated[str, typer.Argument(help="table1 ... table9, or all")],
    preset: Annotated[str, typer.Option(help="paper (GPUs, days) or smoke (CPU)")] = "paper",
    only: Annotated[
        list[str] | None, typer.Option(help="run only these stages: flops, train, eval")
    ] = None,
    rows: Annotated[list[str] | None, typer.Option(help="row numbers (1-based) or slugs")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs per training run (torchrun)")] = 1,
    results: Annotated[
        Path, typer.Option(help="TABLE.csv/.md go here (other presets: in a subfolder)")
    ] = Path("results"),
    runs: Annotated[Path, typer.Option(help="checkpoints and per-row state")] = Path("runs"),
    data_root: Annotated[Path, typer.Option(help="prepared datasets")] = Path("data"),
    experiments: Annotated[Path, typer.Option(help="experiment YAML folder")] = EXPERIMENTS,
) -> None:
    """Train, evaluate and count every row of a table: paper beside measured, resumable."""
    stages = only or list(STAGES)
    for stage in stages:
        if stage not in STAGES:
            raise SegvitError(f"--only {stage}: expected one of {', '.join(STAGES)}")
    chosen = get_preset(preset)
    out_dir = results if preset == "paper" else results / preset  # never mixed with paper runs
    names = TABLES if table == "all" else [table]
    for name in names:
        config = load_table(_experiment(name, experiments))
        md = run_reproduce(
            config, preset=chosen, stages=stages, rows=rows, results_dir=out_dir,
            runs_dir=runs, data_root=data_root, console=console, gpus=gpus,
        )  # fmt: skip
        _print_table(config.caption, pd.read_csv(md.with_suffix(".csv")), config.metrics)
        console.print(f"wrote {md} and {md.with_suffix('.csv')}")
    if table == "all":
        plot("figure4", results=out_dir, experiments=experiments)
        tables(results=out_dir)


def _print_table(caption: str, frame: pd.DataFrame, metrics: list[str]) -> None:
    """Paper beside measured in the terminal; the files hold every column."""
    table = Table(title=caption, title_justify="left")
    table.add_column("row")
    for metric in metrics:
        for prefix in ("paper_", "", "diff_"):
            table.add_column(f"{prefix}{metric}", justify="right")
    table.add_column("status")
    for _, record in frame.iterrows():
        cells = [str(record["row"])]
        for metric in metrics:
            for prefix in ("paper_", "", "diff_"):
                cells.append(format_cell(record[f"{prefix}{metric}"], signed=prefix == "diff_"))
        cells.append(str(record["status"]))
        table.add_row(*cells)
    console.print(table)


def tables(
    results: Annotated[Path, typer.Option(help="the results folder")] = Path("results"),
) -> None:
    """Gather every results/TABLE.md into results/README.md."""
    readme = gather_readme(results)
    console.print(f"wrote {readme}")


def plot(
    figure: Annotated[str, typer.Argument(help="figure4")],
    results: Annotated[Path, typer.Option(help="the results folder")] = Path("results"),
    experiments: Annotated[Path, typer.Option(help="experiment YAML folder")] = EXPERIMENTS,
) -> None:
    """Draw a figure (accuracy vs GFLOPs) from its table's results to results/FIGURE.png."""
    config = load_figure(_experiment(figure, experiments))
    source = results / f"{config.source}.csv"
    if not source.is_file():
        raise SegvitError(
            f"{source} not found; run `segvit reproduce {config.source}` first "
            f"(`--only flops` gives the GFLOPs axis in minutes)"
        )
    out = plot_figure(config, pd.read_csv(source), results / f"{config.figure}.png")
    console.print(f"wrote {out}")
