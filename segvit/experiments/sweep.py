"""What one `segvit reproduce` asks for, checked once (`Sweep`), and what it runs of each row
(`row_stages`): `reproduce` runs those stages and `reproduce --plan` lists them, by one rule.

A row keeps its state in RUNS/TABLE/STATE/SLUG (`RowFiles`): row.json (the metrics measured so
far and the status), final.pt (its trained weights) and train/ (the training work dir), so an
interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segvit.data.catalog import load_dataset
from segvit.engine.checkpoint import CheckpointPaths
from segvit.engine.recipe import Recipe
from segvit.errors import SegvitError
from segvit.experiments.config import RowConfig, TableConfig, load_table
from segvit.experiments.launch import Launch
from segvit.experiments.released import row_release
from segvit.experiments.tables import NOT_RUN, RowResult
from segvit.fileio import write_json
from segvit.modeling.release import ReleasedModel, cached_path

Stage = Literal["flops", "train", "eval"]
STAGES: tuple[Stage, ...] = ("flops", "train", "eval")
Weights = Literal["train", "release"]  # where a row's weights come from
WEIGHTS: tuple[Weights, ...] = ("train", "release")
EXPERIMENTS = Path(__file__).resolve().parent / "configs"  # the YAML, shipped as package data
TABLES = tuple(f"table{i}" for i in range(1, 10))


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


def select_rows(table: TableConfig, wanted: Sequence[str] | None) -> list[int]:
    """Row indices by 1-based number or slug; all rows when nothing is asked."""
    if not wanted:
        return list(range(len(table.rows)))
    slugs = [r.slug for r in table.rows]
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


@dataclass(frozen=True)
class Sweep:
    """The options of one `segvit reproduce` (and of its `--plan`), checked on construction."""

    recipe: Recipe
    tables: tuple[str, ...] = ()  # experiment names; "all": Tables 1-9, then Figure 4
    stages: tuple[Stage, ...] = STAGES  # what to run of each row
    rows: tuple[str, ...] = ()  # 1-based numbers or slugs, in every table; empty: every row
    weights: Weights = "train"  # "release": rows with a released model are scored from it
    launch: Launch = Launch()  # how a training run is started (GPUs, nodes)
    results: Path = Path("results")  # TABLE.csv/.md (other presets: a subfolder, `out_dir`)
    runs_dir: Path = Path("runs")  # rows' state and checkpoints
    data_root: Path = Path("data")  # prepared datasets
    experiments: Path = EXPERIMENTS  # the folder of experiment YAML files

    def __post_init__(self) -> None:
        for name in ("tables", "stages", "rows"):  # lists from a caller, kept immutable
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        for name in ("results", "runs_dir", "data_root", "experiments"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        for stage in self.stages:
            if stage not in STAGES:
                raise SegvitError(f"--only {stage}: expected one of {', '.join(STAGES)}")
        self.launch.check_stages(self.stages)
        if self.weights not in WEIGHTS:
            raise SegvitError(f"--weights {self.weights}: expected one of {', '.join(WEIGHTS)}")

    @property
    def everything(self) -> bool:
        """ "all": every table, then Figure 4 and results/README.md."""
        return "all" in self.tables

    @property
    def table_names(self) -> list[str]:
        return list(TABLES) if self.everything else list(dict.fromkeys(self.tables))

    def load_tables(self) -> list[TableConfig]:
        """Every asked table, read before anything runs (a bad name fails early)."""
        return [load_table(experiment_file(name, self.experiments)) for name in self.table_names]

    @property
    def out_dir(self) -> Path:
        return results_dir_for(self.results, self.recipe)

    @property
    def state_dir(self) -> str:
        """The recipe's name, or "release-weights" for rows scored from the authors' weights."""
        return self.recipe.name if self.weights == "train" else "release-weights"

    def row_files(self, table: TableConfig, row: RowConfig) -> RowFiles:
        return RowFiles(self.runs_dir / table.table / self.state_dir / row.slug)

    def scored_from_release(self, row: RowConfig) -> bool:
        """A row scored from released weights rather than trained here."""
        return row.variant is not None and (bool(row.release) or self.weights == "release")


@dataclass(frozen=True)
class RowFiles:
    """A row's folder, RUNS/TABLE/STATE/SLUG, and the files in it."""

    folder: Path

    @property
    def state(self) -> Path:  # the metrics measured so far and the status
        return self.folder / "row.json"

    @property
    def weights(self) -> Path:  # the trained weights the row is scored from
        return self.folder / "final.pt"

    @property
    def train(self) -> CheckpointPaths:  # the training run's work dir
        return CheckpointPaths(self.folder / "train")


def load_result(path: Path) -> RowResult:
    """A row.json; a row never run when there is none."""
    if not path.is_file():
        return RowResult(NOT_RUN)
    try:
        data = json.loads(path.read_text())
        return RowResult(str(data["status"]), {k: float(v) for k, v in data["measured"].items()})
    except (ValueError, KeyError, TypeError) as err:
        raise SegvitError(
            f"{path}: unreadable row state ({err}); delete it to redo the row"
        ) from err


def save_result(path: Path, result: RowResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"status": result.status, "measured": result.measured}, indent=1)


@dataclass(frozen=True)
class RowState:
    """What a row's folder says it has done."""

    measured: dict[str, float]  # row.json's metrics
    trained: bool  # final.pt is there

    @classmethod
    def read(cls, files: RowFiles) -> RowState:
        return cls(load_result(files.state).measured, files.weights.is_file())


@dataclass(frozen=True)
class RowStages:
    """What a sweep runs of one row, and why it runs nothing else it was asked to."""

    run: tuple[Stage, ...] = ()  # in order
    skipped: tuple[str, ...] = ()  # "STAGE: why" for each other asked stage
    blocked: tuple[str, ...] = ()  # a released row: what it lacks, each with its command
    release: ReleasedModel | None = None  # scored from these released weights


def row_stages(sweep: Sweep, table: TableConfig, row: RowConfig, state: RowState) -> RowStages:
    """The stages of a built row, by the rules `reproduce` runs and `--plan` lists: a metric in
    row.json skips its stage, final.pt skips training, evaluation needs final.pt or training.
    A row scored from released weights is never trained; its evaluation also needs the weights
    file and the data, and says which command gets each it lacks."""
    assert row.variant is not None
    metrics = set(table.metrics)
    accuracy = metrics - {"gflops"}
    run: list[Stage] = []
    skipped: list[str] = []
    if "flops" in sweep.stages and "gflops" in metrics:
        if "gflops" in state.measured:
            skipped.append("flops: counted")
        else:
            run.append("flops")
    if sweep.scored_from_release(row):
        return _release_stages(sweep, table, row, state, run, skipped)
    if "train" in sweep.stages and accuracy:
        if state.trained:
            skipped.append("train: final.pt exists")
        else:
            run.append("train")
    if "eval" in sweep.stages and accuracy:
        if accuracy <= state.measured.keys():
            skipped.append("eval: scored")
        elif state.trained or "train" in run:
            run.append("eval")
        else:
            skipped.append("eval: no final.pt and training not asked")
    return RowStages(tuple(run), tuple(skipped))


def _release_stages(
    sweep: Sweep,
    table: TableConfig,
    row: RowConfig,
    state: RowState,
    run: list[Stage],
    skipped: list[str],
) -> RowStages:
    release = row_release(row)
    needed = [m for m in table.metrics if m != "gflops" and m not in state.measured]
    why = []
    if release is None:
        why.append("no released model (train it: drop --weights release)")
    elif "eval" in sweep.stages and needed:
        dataset = load_dataset(release.dataset)
        if not cached_path(release).is_file():
            why.append(f"no weights: segvit weights fetch {release.name}")
        if not dataset.root(sweep.data_root).is_dir():
            get = f"segvit prepare {dataset.prepare}" if dataset.prepare else dataset.how_to_get()
            why.append(f"no data: {get}")
        if not why:
            run.append("eval")
    elif "eval" in sweep.stages:
        skipped.append("eval: scored")
    if "train" in sweep.stages and set(table.metrics) - {"gflops"}:
        skipped.append("train: scored from released weights")
    return RowStages(tuple(run), tuple(skipped), tuple(why), release)
