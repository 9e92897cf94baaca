"""`segvit reproduce ... --plan`: what a sweep would run and cost, before anything runs.

Per row: the stages that would run, by the rules `reproduce` itself applies (a metric in the
row's row.json skips its stage, final.pt skips training), the iterations of its recipe, and
GPU-hours from a step time measured by `segvit bench train --save` (the plan names the file,
the device, the host and the date). Without a measurement the row says so and gives the
command; an estimate from its GFLOPs at an assumed utilisation is labelled as an assumption.
Then the disk the data and checkpoints take, and what is missing, each with its fix.
Nothing is trained, downloaded or written; models are built on the meta device (no memory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import timm
import torch

from segvit.analysis.hardware import ASSUMED_MFU, REFERENCE_PEAK, seconds_per_image
from segvit.bench.train_step import BenchRecord, pick_record, read_record
from segvit.data.prepare import verify_dataset
from segvit.engine.checkpoint import CheckpointPaths
from segvit.engine.logging import read_log
from segvit.engine.recipe import Backbone, Recipe
from segvit.errors import SegvitError
from segvit.experiments.config import RowConfig, TableConfig, load_table
from segvit.experiments.launch import Launch
from segvit.experiments.reproduce import flops_experiment, row_experiment
from segvit.experiments.spec import Experiment
from segvit.experiments.sweep import (
    RowState,
    Stage,
    Sweep,
    load_result,
    row_stages,
    select_rows,
)
from segvit.modeling.specs import ViTSpec
from segvit.modeling.timm_vit import backbone_spec
from segvit.modeling.variants import build_model
from segvit.modeling.weights import WEIGHT_SUFFIXES, hub_url, weights_dir

# A training run's files (segvit.engine.checkpoint): last.pt, best.pt and the row's final.pt
# hold float32 weights; last.state.pt holds them again with AdamW's two moments.
CHECKPOINT_BYTES_PER_PARAM = 3 * 4 + (4 + 8)

Status = Literal["to run", "done", "blocked", "not implemented", "not selected"]
ModelKey = tuple[str, str | None, str, int]  # (variant, backbone, dataset, crop): one model


@dataclass(frozen=True)
class StepTime:
    seconds_per_image: float  # one image through a training step on one device
    measured: bool  # False: an assumption (see source)
    source: str  # which figure, measured where and when, or what was assumed


@dataclass(frozen=True)
class RowPlan:
    table: str
    row: str
    variant: str | None  # None: a peer method the toolkit does not build
    dataset: str  # what it trains and is scored on under this recipe
    status: Status
    run: tuple[Stage, ...] = ()  # the stages that would run, in order
    skipped: tuple[str, ...] = ()  # why each other asked stage would not (a released row:
    # and what its evaluation lacks, with the command that gets it)
    iters: int | None = None  # the recipe's iterations, when it trains
    resumes_at: int = 0  # the iteration an unfinished run continues from
    step: StepTime | None = None  # None: not training, or nothing to estimate from
    gpu_hours: float | None = None  # training only: evaluation is not estimated
    checkpoint_gb: float = 0.0  # what its training writes


@dataclass(frozen=True)
class DiskItem:
    what: str
    gb: float
    source: str


@dataclass(frozen=True)
class Missing:
    kind: Literal["data", "weights", "measurement"]
    name: str  # the dataset (`segvit prepare` name), weights (hub name) or variant
    problem: str
    fix: str  # the command that fixes it


@dataclass(frozen=True)
class Plan:
    tables: tuple[str, ...]
    recipe: str
    launch: Launch
    rows: tuple[RowPlan, ...]
    disk: tuple[DiskItem, ...]
    missing: tuple[Missing, ...]

    @property
    def gpu_hours(self) -> float:
        return sum(row.gpu_hours or 0.0 for row in self.rows)

    @property
    def wall_hours(self) -> float:
        """On launch.world_size GPUs, scaling perfectly (data loading and evaluation aside)."""
        return self.gpu_hours / self.launch.world_size

    @property
    def unestimated(self) -> list[RowPlan]:
        return [row for row in self.rows if "train" in row.run and row.gpu_hours is None]

    @property
    def disk_gb(self) -> float:
        return sum(item.gb for item in self.disk)

    def to_dict(self) -> dict[str, Any]:
        totals = {"gpu_hours": self.gpu_hours, "wall_hours": self.wall_hours,
                  "disk_gb": self.disk_gb}  # fmt: skip
        return json.loads(json.dumps(asdict(self) | totals, default=str))


def make_plan(sweep: Sweep, *, bench_files: Sequence[Path] | None = None) -> Plan:
    """The plan of `segvit reproduce` with these options; bench records from `bench_files`,
    else every RUNS/bench/*.json."""
    configs = sweep.load_tables()
    asked = {config.table for config in configs}
    papers = sorted(sweep.experiments.glob("table*.yaml"))
    every = [*configs, *(load_table(path) for path in papers if path.stem not in asked)]
    gflops = _known_gflops(every, sweep)
    if bench_files is None:
        bench_files = sorted((sweep.runs_dir / "bench").glob("*.json"))
    records = [read_record(path) for path in bench_files]
    planned: list[RowPlan] = []
    pairs: list[tuple[RowPlan, Experiment]] = []  # rows that train or evaluate
    for config in configs:
        chosen = select_rows(config, sweep.rows)
        for index, row in enumerate(config.rows):
            plan, experiment = _plan_row(sweep, config, row, index in chosen, records, gflops)
            planned.append(plan)
            if experiment is not None:
                pairs.append((plan, experiment))
    disk, missing = _needs(pairs, sweep)
    return Plan(
        tuple(sweep.table_names), sweep.recipe.name, sweep.launch, tuple(planned), disk, missing
    )


def _plan_row(
    sweep: Sweep,
    table: TableConfig,
    row: RowConfig,
    selected: bool,
    records: Sequence[BenchRecord],
    gflops: dict[ModelKey, tuple[float, str]],
) -> tuple[RowPlan, Experiment | None]:
    """The row as `reproduce` would take it (`row_stages`); the experiment when it trains or
    evaluates its own weights (its data and weights are needed)."""
    base = {"table": table.table, "row": row.name, "variant": row.variant, "dataset": row.dataset}
    if row.variant is None:
        return RowPlan(**base, status=row.unbuilt_status), None
    if not selected:
        return RowPlan(**base, status="not selected"), None
    files = sweep.row_files(table, row)
    stages = row_stages(sweep, table, row, RowState.read(files))
    run, skipped = stages.run, stages.skipped + stages.blocked
    status: Status = "to run" if run else "blocked" if stages.blocked else "done"
    if sweep.scored_from_release(row):  # never trained here: nothing to estimate
        return RowPlan(**base, status=status, run=run, skipped=skipped), None
    experiment = row_experiment(row, sweep.recipe)
    base["dataset"] = experiment.dataset.name
    if "train" not in run:
        plan = RowPlan(**base, status=status, run=run, skipped=skipped)
        return plan, experiment if "eval" in run else None
    iters = experiment.recipe.iters
    resumes_at = _resumes_at(files.train, experiment.recipe)
    step = _step_time(experiment, row, records, gflops)
    hours = None
    if step is not None:
        hours = (iters - resumes_at) * experiment.recipe.batch * step.seconds_per_image / 3600
    params = _param_count(experiment.variant.name, experiment.backbone,
                          experiment.dataset.num_classes, experiment.crop,
                          experiment.recipe.tiny)  # fmt: skip
    plan = RowPlan(
        **base, status=status, run=run, skipped=skipped, iters=iters,
        resumes_at=resumes_at, step=step, gpu_hours=hours,
        checkpoint_gb=params * CHECKPOINT_BYTES_PER_PARAM / 1e9,
    )  # fmt: skip
    return plan, experiment


def _resumes_at(paths: CheckpointPaths, recipe: Recipe) -> int:
    """Where an unfinished run continues: its last checkpoint, the last logged iteration
    rounded down to the checkpoint interval (a checkpoint also comes at the end)."""
    if not paths.state.is_file() or not paths.log.is_file():
        return 0
    logged = 0
    for record in read_log(paths.log):
        if record.get("kind") == "train":
            logged = max(logged, int(record.get("iter", 0)))
    if logged >= recipe.iters:
        return recipe.iters
    return logged // recipe.checkpoint_interval * recipe.checkpoint_interval


def _step_time(
    experiment: Experiment,
    row: RowConfig,
    records: Sequence[BenchRecord],
    gflops: dict[ModelKey, tuple[float, str]],
) -> StepTime | None:
    e = experiment
    record = pick_record(
        records, e.variant.name, e.crop, tiny=e.recipe.tiny, dataset=e.dataset.name,
        backbone=e.backbone, frozen=e.recipe.freeze_backbone,
    )  # fmt: skip
    if record is not None:
        return StepTime(
            record.seconds_per_image,
            True,
            f"measured {record.measured_at} on {record.device}, host {record.host}: "
            f"{record.seconds_per_iter:.3f} s/iter at batch {record.batch}, {record.dtype} "
            f"({record.path})",
        )
    paper = flops_experiment(row)
    if experiment.recipe.tiny or (experiment.dataset.name, experiment.crop) != (
        paper.dataset.name,
        paper.crop,
    ):
        return None  # the GFLOPs figures are the paper-scale models'
    known = gflops.get(_model_key(paper))
    if known is None:
        return None
    value, source = known
    peak = REFERENCE_PEAK
    return StepTime(
        seconds_per_image(value, peak.bf16_tflops, ASSUMED_MFU),
        False,
        f"assumed, not measured: {ASSUMED_MFU:.0%} MFU of an {peak.label} "
        f"({peak.bf16_tflops:.0f} bf16 TFLOP/s) at {value:.1f} GFLOPs ({source})",
    )


def _model_key(experiment: Experiment) -> ModelKey:
    e = experiment
    return (e.variant.name, e.backbone, e.dataset.name, e.crop)


def _known_gflops(tables: Sequence[TableConfig], sweep: Sweep) -> dict[ModelKey, tuple[float, str]]:
    """GFLOPs per (variant, backbone, dataset, crop): counted in a row's state, else the
    paper's."""
    known: dict[ModelKey, tuple[float, str]] = {}
    for table in tables:
        for row in table.rows:
            if row.variant is None:
                continue
            paper = flops_experiment(row)
            key = _model_key(paper)
            state = sweep.row_files(table, row).state
            counted = load_result(state).measured.get("gflops")
            if counted is not None:
                known[key] = (counted, f"counted, {state}")
            elif isinstance(row.paper.get("gflops"), int | float) and key not in known:
                known[key] = (float(row.paper["gflops"]), f"the paper's {table.table}")
    return known


@cache
def _param_count(
    variant: str, backbone: str | None, num_classes: int, crop: int, tiny: bool
) -> int:
    with torch.device("meta"):  # shapes only: ViT-L costs no memory and no init time
        model = build_model(
            variant, num_classes=num_classes, crop=crop, tiny=tiny, backbone=backbone
        )
    return sum(p.numel() for p in model.parameters())


def _in_hf_cache(name: str) -> bool:
    """timm's weights file of `name` is in the Hugging Face cache ($HF_HOME)."""
    from huggingface_hub import try_to_load_from_cache

    config = timm.models.get_pretrained_cfg(name)
    repo = getattr(config, "hf_hub_id", None)
    if not repo:
        return False
    for filename in ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo, filename), str):
            return True
    return False


@cache
def _hub_file_gb(spec: ViTSpec) -> float:
    """A backbone's weights file on the hub: the whole timm model (classifier too), float32."""
    with torch.device("meta"):
        model = timm.create_model(spec.timm_name, pretrained=False)
    return sum(p.numel() for p in model.parameters()) * 4 / 1e9


def _needs(
    pairs: Sequence[tuple[RowPlan, Experiment]], sweep: Sweep
) -> tuple[tuple[DiskItem, ...], tuple[Missing, ...]]:
    """The disk the sweep takes and what it lacks (data, pretrained weights, measurements) for
    the rows that train or evaluate, with the experiment each runs."""
    recipe, launch = sweep.recipe, sweep.launch
    data_root, runs_dir = sweep.data_root, sweep.runs_dir
    disk: list[DiskItem] = []
    missing: list[Missing] = []
    datasets = {e.dataset.prepare or e.dataset.name: e.dataset for _, e in pairs}
    for name, dataset in datasets.items():
        archives, tree = dataset.disk_gb
        try:
            verify_dataset(dataset, data_root)
        except SegvitError as err:
            fix = f"segvit prepare {name} --root {data_root}" if dataset.prepare else str(err)
            missing.append(Missing("data", name, str(err), fix))
            if dataset.prepare:
                disk.append(DiskItem(f"{name}: archives in {data_root}/downloads", archives,
                                     dataset.preparation.describe_downloads()))  # fmt: skip
                disk.append(DiskItem(f"{name}: prepared tree", tree, "estimate: the archive"))
            continue
        tree_gb = _folder_gb(dataset.root(data_root))
        disk.append(DiskItem(f"{name}: prepared tree (present)", tree_gb, "measured"))

    training = [(r, e) for r, e in pairs if "train" in r.run]
    hub = [e for _, e in training if e.recipe.pretrained == Backbone.HUB and not e.recipe.tiny]
    for spec in dict.fromkeys(e.variant.spec for e in hub if e.backbone is None):
        gb = _hub_file_gb(spec)
        if any((weights_dir() / f"{spec.hub_name}{s}").is_file() for s in WEIGHT_SUFFIXES):
            disk.append(DiskItem(f"{spec.label} AugReg weights (cached)", gb, "params x 4 bytes"))
            continue
        target = weights_dir() / f"{spec.hub_name}.safetensors"
        missing.append(Missing(
            "weights", spec.hub_name,
            f"{spec.label} pretrained weights not in {weights_dir()} ($SEGVIT_WEIGHTS); training "
            "would fetch them from huggingface.co if online",
            f"mkdir -p {weights_dir()} && curl -fL -o {target} {hub_url(spec)}",
        ))  # fmt: skip
        disk.append(DiskItem(f"{spec.label} AugReg weights", gb, "parameters x 4 bytes"))
    for name in dict.fromkeys(e.backbone for e in hub if e.backbone is not None):
        spec = backbone_spec(name)  # a family's weights come through timm and the HF cache
        gb = _hub_file_gb(spec)
        what = f"{name} weights (Hugging Face cache)"
        if _in_hf_cache(name):
            disk.append(DiskItem(f"{what}, cached", gb, "parameters x 4 bytes"))
            continue
        missing.append(Missing(
            "weights", name,
            f"{name} weights not in the Hugging Face cache ($HF_HOME); training would fetch "
            "them through timm if online",
            f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\"",
        ))  # fmt: skip
        disk.append(DiskItem(what, gb, "parameters x 4 bytes"))

    if training:
        disk.append(DiskItem(
            f"checkpoints of {len(training)} rows to train, under {runs_dir}",
            sum(r.checkpoint_gb for r, _ in training),
            "parameters x (3 x 4 bytes: last.pt, best.pt, final.pt + 12 bytes: last.state.pt "
            "with AdamW's two moments); a save briefly holds one more copy of a file",
        ))  # fmt: skip
    per_gpu = recipe.device_batch or max(1, recipe.batch // launch.world_size)
    for row, e in training:
        if row.step is not None and row.step.measured:
            continue
        tiny = " --tiny" if e.recipe.tiny else ""
        model = e.variant.name + (f" --backbone {e.backbone}" if e.backbone else "")
        model += " --freeze-backbone" if e.recipe.freeze_backbone else ""
        named = e.variant.name + (f" on {e.backbone}" if e.backbone else "")
        missing.append(Missing(
            "measurement", named,
            f"no `segvit bench train` record of {named} at {e.crop} (on the training GPU)",
            f"segvit bench train {model} --dataset {e.dataset.name} --crop {e.crop} "
            f"--batch {per_gpu}{tiny} --save --runs {runs_dir}",
        ))  # fmt: skip
    unique = {(m.kind, m.name, m.fix): m for m in missing}
    return tuple(disk), tuple(unique.values())


def _folder_gb(folder: Path) -> float:
    total = 0
    for parent, _, files in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(parent, name)) for name in files)
    return total / 1e9
