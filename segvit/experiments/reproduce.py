"""`segvit reproduce TABLE`: train, evaluate and count every row; paper beside measured.

Each row keeps its state in runs/<table>/<preset>/<row>/row.json, written after every step,
so an interrupted sweep resumes where it stopped: a trained row is not trained again, a
counted row is not counted again. GFLOPs are always counted at the paper's scale (the real
variant, dataset and crop), whatever the preset.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import Progress

from segvit.analysis.flops import count_flops
from segvit.data.info import load_dataset
from segvit.engine.recipe import Backbone, Recipe
from segvit.errors import SegvitError
from segvit.experiments.config import RowConfig, TableConfig, load_figure, load_table
from segvit.experiments.launch import Launch, torchrun_command
from segvit.experiments.plot import plot_figure
from segvit.experiments.released import RELEASE_NOTE, eval_release, row_release
from segvit.experiments.scoring import score_checkpoint
from segvit.experiments.spec import Experiment, resolve, train_experiment
from segvit.experiments.tables import (
    NOT_RUN,
    RowResult,
    build_frame,
    gather_readme,
    machine_label,
    write_table,
)
from segvit.fileio import atomic_write, exclusive_lock, write_json
from segvit.modeling.release import ReleasedModel, cached_path

Stage = Literal["flops", "train", "eval"]
STAGES: tuple[Stage, ...] = ("flops", "train", "eval")
Weights = Literal["train", "release"]  # where a row's weights come from (see _run_release_row)
WEIGHTS: tuple[Weights, ...] = ("train", "release")
EXPERIMENTS = Path(__file__).resolve().parent / "configs"  # the YAML, shipped as package data
TABLES = tuple(f"table{i}" for i in range(1, 10))


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
    work_dir = run_dir / "train"
    experiment = row_experiment(row, recipe)
    if launch.distributed:
        _torchrun(experiment, work_dir, data_root, launch)
    else:
        train_experiment(experiment, work_dir=work_dir, data_root=data_root, resume=True)
    best, last = work_dir / "best.pt", work_dir / "last.pt"
    return best if best.is_file() else last


def _torchrun(experiment: Experiment, work_dir: Path, data_root: Path, launch: Launch) -> None:
    train_args = [
        "train", experiment.variant.name,
        "--dataset", experiment.dataset.source or experiment.dataset.name,
        "--preset", experiment.recipe.name, "--crop", str(experiment.crop),
        "--work-dir", str(work_dir), "--data-root", str(data_root), "--resume",
    ]  # fmt: skip
    if subprocess.run(torchrun_command(launch, train_args), check=False).returncode:
        name = experiment.variant.name
        raise SegvitError(f"training {name} failed; see {work_dir / 'log.jsonl'}")
    launch.settle(work_dir)


def eval_row(
    row: RowConfig, recipe: Recipe, weights: Path, modes: Sequence[str], *, data_root: Path
) -> dict[str, float]:
    """The table's metrics of one trained row: ss and/or ms mIoU (59/60 for PC)."""
    dataset = row_experiment(row, recipe).dataset
    return score_checkpoint(
        weights, dataset, modes, data_root=data_root, max_images=recipe.eval_max_images
    )


def row_slug(row: RowConfig) -> str:
    return row.slug


def row_dir(runs_dir: Path, table: str, state_dir: str, row: RowConfig) -> Path:
    """A row's folder: RUNS/TABLE/STATE/SLUG, holding row.json, final.pt and train/. STATE is
    the recipe's name, or "release-weights" for rows scored from the authors' weights."""
    return runs_dir / table / state_dir / row_slug(row)


def select_rows(table: TableConfig, wanted: Sequence[str] | None) -> list[int]:
    """Row indices by 1-based number or slug; all rows when nothing is asked."""
    if not wanted:
        return list(range(len(table.rows)))
    slugs = [row_slug(r) for r in table.rows]
    chosen = []
    for item in wanted:
        if item.isdigit() and 1 <= int(item) <= len(table.rows):
            chosen.append(int(item) - 1)
        elif item in slugs:
            chosen.append(slugs.index(item))
        else:
            raise SegvitError(
                f"--rows {item}: no such row in {table.table}; expected 1-{len(table.rows)} "
                f"or one of: {', '.join(slugs)}"
            )
    return sorted(set(chosen))


def reproduce(
    table: TableConfig,
    *,
    recipe: Recipe,
    stages: Sequence[Stage] = STAGES,
    rows: Sequence[str] | None = None,
    results_dir: Path = Path("results"),
    runs_dir: Path = Path("runs"),
    data_root: Path = Path("data"),
    launch: Launch = Launch(),
    train_fn: TrainRow | None = None,
    eval_fn: EvalRow | None = None,
    console: Console | None = None,
    weights: Weights = "train",
    release_eval_fn: EvalRelease | None = None,
) -> Path:
    """Run the asked stages for the chosen rows and write results/TABLE.{csv,md}.

    `weights="release"`: rows the authors released a model for are evaluated from it, the
    others are not trained. `train_fn`, `eval_fn` and `release_eval_fn` replace the real
    runners (tests use small stand-ins).
    """
    console = console or Console()
    train_fn = train_fn or partial(train_row, data_root=data_root, launch=launch)
    eval_fn = eval_fn or partial(eval_row, data_root=data_root)
    release_eval_fn = release_eval_fn or partial(eval_release, data_root=data_root)
    state_dir = recipe.name if weights == "train" else "release-weights"
    chosen = select_rows(table, rows)
    results = [RowResult(NOT_RUN) for _ in table.rows]
    # Two sweeps of one table and recipe would train the same rows into the same folders.
    node = f"-node{launch.node_rank}" if launch.nnodes > 1 else ""
    lock = runs_dir / table.table / state_dir / f".reproduce{node}.lock"
    with (
        exclusive_lock(lock, f"`segvit reproduce {table.table}`"),
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task(f"{table.table} ({recipe.name})", total=len(chosen))
        for index, row in enumerate(table.rows):
            state_path = row_dir(runs_dir, table.table, state_dir, row) / "row.json"
            results[index] = _load_state(state_path)
            if index not in chosen:
                continue
            progress.update(task, description=f"{table.table}: {row.name}")
            if row.variant is not None and (row.release or weights == "release"):
                results[index] = _run_release_row(
                    table, row, recipe, stages, state_path, release_eval_fn, console,
                    data_root=data_root,
                )  # fmt: skip
            else:
                results[index] = _run_row(
                    table, row, recipe, stages, state_path, train_fn, eval_fn, console
                )
            progress.advance(task)
    frame = build_frame(table, results, recipe=recipe, machine=machine_label())
    note = _note(recipe, stages)
    if weights == "release" or any(row.release for row in table.rows):
        note += f" {RELEASE_NOTE}"
    return write_table(table, frame, results_dir, note=note)


def _run_row(
    table: TableConfig,
    row: RowConfig,
    recipe: Recipe,
    stages: Sequence[Stage],
    state_path: Path,
    train_fn: TrainRow,
    eval_fn: EvalRow,
    console: Console,
) -> RowResult:
    if row.variant is None:
        return RowResult(row.unbuilt_status)
    result = _load_state(state_path)
    wanted = set(table.metrics)
    if "flops" in stages and "gflops" in wanted and "gflops" not in result.measured:
        model = flops_experiment(row).build_model(for_flops=True)
        result.measured["gflops"] = round(count_flops(model).gflops, 2)
        del model
        _save_state(state_path, result)
    weights = state_path.parent / "final.pt"
    if "train" in stages and not weights.is_file() and wanted - {"gflops"}:
        console.print(f"[bold]train[/] {table.table} / {row.name} ({recipe.name})")
        with open(train_fn(row, recipe, state_path.parent), "rb") as trained:
            atomic_write(weights, lambda file: shutil.copyfileobj(trained, file))
    metrics_needed = [m for m in wanted if m != "gflops" and m not in result.measured]
    if "eval" in stages and metrics_needed and weights.is_file():
        console.print(f"[bold]eval[/] {table.table} / {row.name} ({', '.join(table.inference)})")
        result.measured.update(eval_fn(row, recipe, weights, table.inference))
        _save_state(state_path, result)
    missing = [m for m in table.metrics if m not in result.measured]
    result.status = "done" if not missing else f"missing {', '.join(missing)}"
    _save_state(state_path, result)
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


def _load_state(path: Path) -> RowResult:
    if not path.is_file():
        return RowResult(NOT_RUN)
    try:
        data = json.loads(path.read_text())
        return RowResult(str(data["status"]), {k: float(v) for k, v in data["measured"].items()})
    except (ValueError, KeyError, TypeError) as err:
        raise SegvitError(
            f"{path}: unreadable row state ({err}); delete it to redo the row"
        ) from err


def _save_state(path: Path, result: RowResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"status": result.status, "measured": result.measured}, indent=1)


def experiment_file(name: str, folder: Path = EXPERIMENTS) -> Path:
    """`folder/NAME.yaml`, or a one-line error listing the experiments that folder holds."""
    path = Path(folder) / f"{name}.yaml"
    if not Path(folder).is_dir():
        raise SegvitError(f"--experiments {folder}: no such folder of experiment YAML files")
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise SegvitError(f"no experiment {name!r} in {folder}; expected one of: {known}")
    return path


def results_dir_for(results: Path, recipe: Recipe) -> Path:
    """Where a recipe's tables go: results/ for the paper's, results/NAME/ for any other, so
    a smoke run never overwrites a paper table."""
    return results if recipe.paper_schedule else results / recipe.name


def reproduce_tables(
    names: Sequence[str],
    *,
    recipe: Recipe,
    stages: Sequence[Stage] = STAGES,
    rows: Sequence[str] | None = None,
    results: Path = Path("results"),
    runs_dir: Path = Path("runs"),
    data_root: Path = Path("data"),
    experiments: Path = EXPERIMENTS,
    launch: Launch = Launch(),
    console: Console | None = None,
    on_table: Callable[[TableConfig, Path], None] | None = None,
    weights: Weights = "train",
) -> list[Path]:
    """Reproduce each named table ("all": Tables 1-9, then Figure 4 and results/README.md);
    `on_table(config, markdown_path)` after each. Returns the markdown files written."""
    for stage in stages:
        if stage not in STAGES:
            raise SegvitError(f"--only {stage}: expected one of {', '.join(STAGES)}")
    launch.check_stages(stages)
    if weights not in WEIGHTS:
        raise SegvitError(f"--weights {weights}: expected one of {', '.join(WEIGHTS)}")
    everything = "all" in names
    tables = list(TABLES) if everything else list(dict.fromkeys(names))
    configs = [load_table(experiment_file(name, experiments)) for name in tables]  # fail early
    out_dir = results_dir_for(results, recipe)
    written = []
    for config in configs:
        md = reproduce(
            config, recipe=recipe, stages=stages, rows=rows, results_dir=out_dir,
            runs_dir=runs_dir, data_root=data_root, console=console, launch=launch,
            weights=weights,
        )  # fmt: skip
        written.append(md)
        if on_table is not None:
            on_table(config, md)
    if everything:
        draw_figure("figure4", results=out_dir, experiments=experiments)
        gather_readme(out_dir)
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


# ---------------------------------------------------------------------------- released weights


def _run_release_row(
    table: TableConfig,
    row: RowConfig,
    recipe: Recipe,
    stages: Sequence[Stage],
    state_path: Path,
    eval_fn: EvalRelease,
    console: Console,
    *,
    data_root: Path,
) -> RowResult:
    """GFLOPs as for any row; accuracy from the released file instead of a training run.
    Without the file or the data the row says which command gets it; the table goes on."""
    counted = [stage for stage in stages if stage == "flops"]
    result = _run_row(table, row, recipe, counted, state_path, _never, _never, console)
    release = row_release(row)
    needed = [m for m in table.metrics if m != "gflops" and m not in result.measured]
    why = []
    if release is None:
        why.append("no released model (train it: drop --weights release)")
    elif "eval" in stages and needed:
        dataset = load_dataset(release.dataset)
        if not cached_path(release).is_file():
            why.append(f"no weights: segvit weights fetch {release.name}")
        if not dataset.root(data_root).is_dir():
            get = f"segvit prepare {dataset.prepare}" if dataset.prepare else dataset.how_to_get()
            why.append(f"no data: {get}")
        if not why:
            console.print(f"[bold]eval[/] {table.table} / {row.name} (released {release.name})")
            result.measured.update(eval_fn(release, recipe, table.inference))
    missing = [m for m in table.metrics if m not in result.measured]
    if why:
        result.status = "; ".join(why)
    elif missing:
        result.status = f"missing {', '.join(missing)}"
    else:
        result.status = f"done (released {release.name})" if release else "done"
    _save_state(state_path, result)
    return result


def _never(*args: object) -> object:
    raise AssertionError("a released row is never trained or evaluated as a trained one")
