"""`segvit reproduce`, `segvit tables`, `segvit plot figure|curves`: the paper's tables,
Figure 4 and training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
EXPERIMENTS_HELP = "experiment YAML folder; default: the ones shipped with segvit"


def reproduce(
    tables: Annotated[list[str], typer.Argument(help="table1 ... table9 (several), or all")],
    preset: Annotated[
        str, typer.Option(help="paper (GPUs, days), smoke (CPU), smoke-scratch (random backbone)")
    ] = "paper",
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
    experiments: Annotated[Path | None, typer.Option(help=EXPERIMENTS_HELP)] = None,
    nnodes: Annotated[int, typer.Option(help="nodes per training run (--only train)")] = 1,
    node_rank: Annotated[int | None, typer.Option(help="this node's rank (nnodes > 1)")] = None,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="HOST:PORT on node 0, reached by every node (nnodes > 1)")
    ] = None,
    rdzv_id: Annotated[str, typer.Option(help="one id per job, the same on every node")] = "segvit",
    plan: Annotated[bool, typer.Option("--plan", help="print what would run; run nothing")] = False,
    bench_file: Annotated[
        list[Path] | None, typer.Option(help="--plan: step times; default: RUNS/bench/*.json")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="--plan as one JSON object")] = False,
    weights: Annotated[
        str, typer.Option(help="train, or release: evaluate the authors' released models")
    ] = "train",
) -> None:
    """Train, evaluate and count every row of a table: paper beside measured, resumable."""
    from segvit.engine.recipe import get_recipe
    from segvit.experiments import sweep
    from segvit.experiments.launch import Launch
    from segvit.experiments.reproduce import reproduce_tables
    from segvit.fileio import check_folder

    check_folder(results, "--results"), check_folder(runs, "--runs")  # before hours of work
    launch = Launch(gpus=gpus, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint,
                    rdzv_id=rdzv_id)  # fmt: skip
    chosen = sweep.Sweep(
        get_recipe(preset), tables=tables, stages=only or sweep.STAGES, rows=rows or (),
        weights=weights, launch=launch, results=results, runs_dir=runs, data_root=data_root,
        experiments=experiments or sweep.EXPERIMENTS,
    )  # fmt: skip
    if plan:
        from segvit.cli.plan_cmds import show_plan

        return show_plan(chosen, bench_files=bench_file, as_json=as_json, console=console)
    reproduce_tables(chosen, console=console, on_table=show_table)


def show_table(config, markdown: Path) -> None:
    """A table just written: paper beside measured in the terminal, and where its files are."""
    import pandas as pd

    _print_table(config.caption, pd.read_csv(markdown.with_suffix(".csv")), config.metrics)
    console.print(f"wrote {markdown} and {markdown.with_suffix('.csv')}")


def _print_table(caption: str, frame, metrics: list[str]) -> None:
    """Paper beside measured in the terminal; the files hold every column."""
    from segvit.experiments.tables import format_cell

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
    from segvit.experiments.tables import gather_readme

    console.print(f"wrote {gather_readme(results)}")


def plot_figure(
    figure: Annotated[str, typer.Argument(help="figure4")],
    results: Annotated[Path, typer.Option(help="the results folder")] = Path("results"),
    experiments: Annotated[Path | None, typer.Option(help=EXPERIMENTS_HELP)] = None,
) -> None:
    """Draw a figure (accuracy vs GFLOPs) from its table's results to results/FIGURE.png (also
    `segvit plot FIGURE`)."""
    from segvit.experiments.reproduce import draw_figure
    from segvit.experiments.sweep import EXPERIMENTS

    out = draw_figure(figure, results=results, experiments=experiments or EXPERIMENTS)
    console.print(f"wrote {out}")


def plot_curves(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="training work dirs or row folders (their log.jsonl)"),
    ],
    out: Annotated[Path | None, typer.Option(help="the PNG; default RESULTS/curves.png")] = None,
    results: Annotated[Path, typer.Option(help="the results folder")] = Path("results"),
) -> None:
    """Losses, learning rates and validation mIoU of runs against iteration."""
    from segvit.analysis.curves import draw_curves

    console.print(f"wrote {draw_curves(run_dirs, out or results / 'curves.png')}")
