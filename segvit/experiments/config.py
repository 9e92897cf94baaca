"""Experiment files (experiments/*.yaml) loaded into frozen dataclasses, strictly.

An unknown key, a missing key or a value of the wrong type fails with the file and the key
path in the message, before anything runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from segvit.errors import SegvitError
from segvit.schema import from_mapping, read_yaml

Metric = Literal["miou_ss", "miou_ms", "miou59_ms", "miou60_ms", "gflops"]
Inference = Literal["ss", "ms"]
PaperValue = float | str | None  # a number, a bound such as ">250", or not reported
BOUND = re.compile(r"[<>]\d+(\.\d+)?")  # how the paper writes a bound: ">250", "<0.5"


@dataclass(frozen=True)
class RowConfig:
    """One row of a table: the model that produces it and the paper's numbers."""

    name: str  # how the row reads in the table
    variant: str | None  # a segvit variant; None: a peer method this toolkit does not build
    dataset: str  # a name or a dataset file (relative to the table's file): classes, crop,
    # schedule and evaluation settings
    crop: int | None = None  # None: the dataset's crop for the variant's ViT size
    labels: dict[str, Any] = field(default_factory=dict)  # the paper's descriptive columns
    paper: dict[str, PaperValue] = field(default_factory=dict)  # metric -> paper's number
    release: str | None = None  # a released file (`segvit weights list`), not trained
    cited: str | None = None  # a result the paper cites from another work on another
    # backbone (its reference number, e.g. "[34]"): reported, never built here
    backbone: str | None = None  # a timm name in place of the variant's ViT (segvit backbones)

    @property
    def slug(self) -> str:
        """The row's name as a folder and `--rows` name: "SegViT, ViT-B" -> "segvit-vit-b".
        A name with no ASCII letter or digit ("日本語") gets "row-" and a digest of it, so
        no row's folder is empty (its state would land in the preset's folder)."""
        ascii_name = unicodedata.normalize("NFKD", self.name).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
        return slug or "row-" + hashlib.sha256(self.name.encode()).hexdigest()[:8]

    @property
    def unbuilt_status(self) -> str:
        """What a row without a variant says: cited with its source, or not implemented."""
        return f"cited {self.cited}" if self.cited else "not implemented"


@dataclass(frozen=True)
class TableConfig:
    """A table of the paper: which metrics it reports and its rows."""

    table: str  # file stem and result name: table1 ... table9
    caption: str
    metrics: list[Metric]
    rows: list[RowConfig]
    notes: list[str] = field(default_factory=list)

    @property
    def inference(self) -> list[Inference]:
        """Single- and/or multi-scale evaluation, as the table's metrics need."""
        modes: list[Inference] = []
        if "miou_ss" in self.metrics:
            modes.append("ss")
        if any(m.endswith("_ms") for m in self.metrics):
            modes.append("ms")
        return modes


@dataclass(frozen=True)
class FigureConfig:
    """A figure drawn from one table's rows."""

    figure: str
    caption: str
    source: str  # the table whose rows are the points
    x: Metric
    y: Metric


def load_table(path: Path) -> TableConfig:
    table = _load(path, TableConfig)
    if table.table != Path(path).stem:  # results, plans and `reproduce NAME` go by the stem
        raise SegvitError(
            f"{path}: table: {table.table!r} differs from the file's name {Path(path).stem!r}; "
            "make them one"
        )
    # A row's dataset file is named relative to the table's file.
    rows = [
        dataclasses.replace(row, dataset=str(Path(path).parent / row.dataset))
        if row.dataset.endswith((".yaml", ".yml")) and not Path(row.dataset).is_absolute()
        else row
        for row in table.rows
    ]
    table = dataclasses.replace(table, rows=rows)
    slugs: dict[str, int] = {}
    for i, row in enumerate(table.rows):
        _check_row(row, table, f"{path}: rows[{i}]")
        if row.slug in slugs:  # two rows would share one folder and one row state
            raise SegvitError(
                f"{path}: rows[{i}] {row.name!r} has the name of rows[{slugs[row.slug]}] "
                f"(both {row.slug!r}); every row needs its own name"
            )
        slugs[row.slug] = i
    return table


def _check_row(row: RowConfig, table: TableConfig, where: str) -> None:
    """What the types alone cannot say: a known variant, a valid crop, paper values that
    are numbers or bounds, and only the table's metrics; errors name the file and row."""
    from segvit.modeling.families import find_family  # no torch: names and numbers only
    from segvit.modeling.variants import VARIANTS, crop_problem

    if row.variant is not None and row.variant not in VARIANTS:
        raise SegvitError(
            f"{where}.variant: unknown variant {row.variant!r}; expected one of: "
            f"{', '.join(VARIANTS)}"
        )
    spec = VARIANTS[row.variant].spec if row.variant else None
    if row.backbone is not None:
        if row.variant is None or VARIANTS[row.variant].structure is None:
            raise SegvitError(f"{where}.backbone: {row.variant} keeps its own backbone")
        try:
            spec = find_family(row.backbone)
        except SegvitError as err:
            raise SegvitError(f"{where}.backbone: {err}") from None
    problem = None if row.crop is None else crop_problem(row.crop, spec)
    if problem:
        raise SegvitError(f"{where}.crop: {row.crop}: {problem}")
    unknown = set(row.paper) - set(table.metrics)
    if unknown:
        raise SegvitError(
            f"{where}.paper: {sorted(unknown)} not among the table's metrics {table.metrics}"
        )
    for metric, value in row.paper.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise SegvitError(f"{where}.paper.{metric}: {value}: expected a finite number")
        if isinstance(value, str) and not BOUND.fullmatch(value):
            raise SegvitError(
                f"{where}.paper.{metric}: {value!r}: expected a number, a bound such as "
                "'>250', or null"
            )


def load_figure(path: Path) -> FigureConfig:
    return _load(path, FigureConfig)


def _load(path: Path, cls: type) -> Any:
    return from_mapping(cls, read_yaml(path, "experiment file"), source=str(path))
