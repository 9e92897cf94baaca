"""`segvit reproduce TABLE`: train, evaluate and count every row; paper beside measured.

Each row keeps its state in runs/<table>/<preset>/<row>/row.json, written after every step,
so an interrupted sweep resumes where it stopped: a trained row is not trained again, a
counted row is not counted again. GFLOPs are always counted at the paper's scale (the real
variant, dataset and crop), whatever the preset.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from segvit.analysis.flops import count_flops
from segvit.engine.checkpoint import CheckpointPaths
from segvit.engine.recipe import Backbone, Recipe
from segvit.errors import SegvitError
from segvit.experiments.config import RowConfig, TableConfig, load_figure
from segvit.experiments.launch import Launch, torchrun_command
from segvit.experiments.plot import plot_figure
from segvit.experiments.released import RELEASE_NOTE, eval_release
from segvit.experiments.scoring import score_checkpoint
from segvit.experiments.spec import Experiment, resolve, train_experiment
from segvit.experiments.sweep import (
    EXPERIMENTS,
    RowFiles,
    RowState,
    Stage,
    Sweep,
    experiment_file,
    load_result,
    row_stages,
    save_result,
    select_rows,
)
from segvit.experiments.tables import (
    NOT_RUN,
    RowResult,
    build_frame,
    gather_readme,
    machine_label,
    write_table,
)
from segvit.fileio import atomic_write, exclusive_lock
from segvit.modeling.release import ReleasedModel

# A row runner trains (returns the final weights file) or evaluates (returns metrics).
TrainRow = Callable[[RowConfig, Recipe, Path], Path]
EvalRow = Callable[[RowConfig, Recipe, Path, Sequence[str]], dict[str, float]]
EvalRelease = Callable[[ReleasedModel, Recipe, Sequence[str]], dict[str, float]]


def row_experiment(row: RowConfig, recipe: Recipe) -> Experiment:
    """What a row trains under `recipe`: the row's dataset and crop, unless the recipe is bound
    to a dataset of its own (smoke: the demo set at its crop)."""
    assert row.variant is not None
    if recipe.dataset:
        return resolve(row.variant, recipe=recipe, backbone=row.backbone)
    return resolve(row.variant, row.dataset, recipe=recipe, crop=row.crop, backbone=row.backbone)


def flops_experiment(row: RowConfig) -> Experiment:
    """The row at the paper's scale: GFLOPs are always counted there, whatever the recipe."""
    assert row.variant is not None
    return resolve(row.variant, row.dataset, crop=row.crop, backbone=row.backbone)


def train_row(
    row: RowConfig, recipe: Recipe, run_dir: Path, *, data_root: Path, launch: Launch = Launch()
) -> Path:
    """Train one row (resuming a run left unfinished); returns its best or last weights."""
    paths = RowFiles(run_dir).train
    experiment = row_experiment(row, recipe)
    if launch.distributed:
        _torchrun(experiment, paths, data_root, launch)
    else:
        train_experiment(experiment, work_dir=paths.work_dir, data_root=data_root, resume=True)
    return paths.best if paths.best.is_file() else paths.last


def _torchrun(
    experiment: Experiment, paths: CheckpointPaths, data_root: Path, launch: Launch
) -> None:
    work_dir = paths.work_dir
    train_args = [
        "train", experiment.variant.name,
        "--dataset", experiment.dataset.source or experiment.dataset.name,
        "--preset", experiment.recipe.name, "--crop", str(experiment.crop),
        "--work-dir", str(work_dir), "--data-root", str(data_root), "--resume",
    ]  # fmt: skip
    if subprocess.run(torchrun_command(launch, train_args), check=False).returncode:
        name = experiment.variant.name
        raise SegvitError(f"training {name} failed; see {paths.log}")
    launch.settle(work_dir)


def eval_row(
    row: RowConfig, recipe: Recipe, weights: Path, modes: Sequence[str], *, data_root: Path
) -> dict[str, float]:
    """The table's metrics of one trained row: ss and/or ms mIoU (59/60 for PC)."""
    dataset = row_experiment(row, recipe).dataset
    return score_checkpoint(
        weights, dataset, modes, data_root=data_root, max_images=recipe.eval_max_images
    )


def reproduce(
    table: TableConfig,
    sweep: Sweep,
    *,
    train_fn: TrainRow | None = None,
    eval_fn: EvalRow | None = None,
    release_eval_fn: EvalRelease | None = None,
    console: Console | None = None,
) -> Path:
    """Run the sweep's stages for its chosen rows of `table` and write OUT/TABLE.{csv,md}.

    `sweep.weights == "release"`: rows the authors released a model for are evaluated from it,
    the others are not trained. `train_fn`, `eval_fn` and `release_eval_fn` replace the real
    runners (tests use small stand-ins).
    """
    console = console or Console()
    runners = _Runners(
        train_fn or partial(train_row, data_root=sweep.data_root, launch=sweep.launch),
        eval_fn or partial(eval_row, data_root=sweep.data_root),
        release_eval_fn or partial(eval_release, data_root=sweep.data_root),
    )
    recipe, launch = sweep.recipe, sweep.launch
    chosen = select_rows(table, sweep.rows)
    results = [RowResult(NOT_RUN) for _ in table.rows]
    # Two sweeps of one table and recipe would train the same rows into the same folders.
    node = f"-node{launch.node_rank}" if launch.nnodes > 1 else ""
    lock = sweep.runs_dir / table.table / sweep.state_dir / f".reproduce{node}.lock"
    with (
        exclusive_lock(lock, f"`segvit reproduce {table.table}`"),
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task(f"{table.table} ({recipe.name})", total=len(chosen))
        for index, row in enumerate(table.rows):
            files = sweep.row_files(table, row)
            results[index] = load_result(files.state)
            if index not in chosen:
                continue
            progress.update(task, description=f"{table.table}: {row.name}")
            results[index] = _run_row(sweep, table, row, files, runners, console)
            progress.advance(task)
    frame = build_frame(table, results, recipe=recipe, machine=machine_label())
    note = _note(recipe, sweep.stages)
    if sweep.weights == "release" or any(row.release for row in table.rows):
        note += f" {RELEASE_NOTE}"
    return write_table(table, frame, sweep.out_dir, note=note)


@dataclass(frozen=True)
class _Runners:
    train: TrainRow
    eval: EvalRow
    eval_release: EvalRelease


def _run_row(
    sweep: Sweep,
    table: TableConfig,
    row: RowConfig,
    files: RowFiles,
    runners: _Runners,
    console: Console,
) -> RowResult:
    """Run the stages `row_stages` gives, saving row.json after each."""
    if row.variant is None:
        return RowResult(row.unbuilt_status)
    result = load_result(files.state)
    stages = row_stages(sweep, table, row, RowState(result.measured, files.weights.is_file()))
    if "flops" in stages.run:
        model = flops_experiment(row).build_model(for_flops=True)
        result.measured["gflops"] = round(count_flops(model).gflops, 2)
        del model
        save_result(files.state, result)
    if "train" in stages.run:
        console.print(f"[bold]train[/] {table.table} / {row.name} ({sweep.recipe.name})")
        with open(runners.train(row, sweep.recipe, files.folder), "rb") as trained:
            atomic_write(files.weights, lambda file: shutil.copyfileobj(trained, file))
    if "eval" in stages.run and stages.release is not None:
        release = stages.release
        console.print(f"[bold]eval[/] {table.table} / {row.name} (released {release.name})")
        result.measured.update(runners.eval_release(release, sweep.recipe, table.inference))
    elif "eval" in stages.run:
        console.print(f"[bold]eval[/] {table.table} / {row.name} ({', '.join(table.inference)})")
        result.measured.update(runners.eval(row, sweep.recipe, files.weights, table.inference))
    missing = [m for m in table.metrics if m not in result.measured]
    if stages.blocked:
        result.status = "; ".join(stages.blocked)
    elif missing:
        result.status = f"missing {', '.join(missing)}"
    elif stages.release is not None:
        result.status = f"done (released {stages.release.name})"
    else:
        result.status = "done"
    save_result(files.state, result)
    return result


def _note(recipe: Recipe, stages: Sequence[Stage]) -> str:
    if set(stages) == {"flops"}:
        return (
            f"Only GFLOPs were measured here (`--only flops`, {machine_label()}), at the "
            "paper's scale; accuracy columns stay empty until the rows are trained and evaluated."
        )
    if recipe.paper_schedule:
        scale = "the paper's recipe (full datasets, AugReg weights)"
    else:
        start = {Backbone.SMOKE: "the smoke backbone", None: "a random backbone"}.get(
            recipe.pretrained, recipe.pretrained
        )
        scale = (
            f"the {recipe.name} preset: tiny ViTs trained {recipe.iters} iterations from "
            f"{start} on the {recipe.dataset} dataset, so mIoU columns measure the demo "
            "task, not the paper's"
        )
    return (
        f"Measured with {scale}; GFLOPs always at the paper's scale. Stages run: "
        f"{', '.join(stages)}. Empty measured cells were not run; `status` says why."
    )


def reproduce_tables(
    sweep: Sweep,
    *,
    console: Console | None = None,
    on_table: Callable[[TableConfig, Path], None] | None = None,
) -> list[Path]:
    """Reproduce each table of the sweep ("all": Tables 1-9, then Figure 4 and
    results/README.md); `on_table(config, markdown_path)` after each. Returns the markdown
    files written."""
    configs = sweep.load_tables()  # fail early
    written = []
    for config in configs:
        md = reproduce(config, sweep, console=console)
        written.append(md)
        if on_table is not None:
            on_table(config, md)
    if sweep.everything:
        draw_figure("figure4", results=sweep.out_dir, experiments=sweep.experiments)
        gather_readme(sweep.out_dir)
    return written


def draw_figure(name: str, *, results: Path, experiments: Path = EXPERIMENTS) -> Path:
    """results/FIGURE.png from its source table's results."""
    import pandas as pd

    config = load_figure(experiment_file(name, experiments))
    source = results / f"{config.source}.csv"
    if not source.is_file():
        raise SegvitError(
            f"{source} not found; run `segvit reproduce {config.source}` first "
            f"(`--only flops` gives the GFLOPs axis in minutes)"
        )
    return plot_figure(config, pd.read_csv(source), results / f"{config.figure}.png")
