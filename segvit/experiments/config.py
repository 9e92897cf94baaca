"""Experiment files (experiments/*.yaml) loaded into frozen dataclasses, strictly.

An unknown key, a missing key or a value of the wrong type fails with the file and the key
path in the message, before anything runs.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from segvit.errors import SegvitError

Metric = Literal["miou_ss", "miou_ms", "miou59_ms", "miou60_ms", "gflops"]
Inference = Literal["ss", "ms"]
PaperValue = float | str | None  # a number, a bound such as ">250", or not reported
BOUND = re.compile(r"[<>]\d+(\.\d+)?")  # how the paper writes a bound: ">250", "<0.5"


@dataclass(frozen=True)
class RowConfig:
    """One row of a table: the model that produces it and the paper's numbers."""

    name: str  # how the row reads in the table
    variant: str | None  # a segvit variant; None: a peer method this toolkit does not build
    dataset: str  # sets classes, crop, schedule and evaluation settings
    crop: int | None = None  # None: the dataset's crop for the variant's ViT size
    labels: dict[str, Any] = field(default_factory=dict)  # the paper's descriptive columns
    paper: dict[str, PaperValue] = field(default_factory=dict)  # metric -> paper's number
    release: str | None = None  # a released file (`segvit weights list`), not trained
    cited: str | None = None  # a result the paper cites from another work on another
    # backbone (its reference number, e.g. "[34]"): reported, never built here

    @property
    def slug(self) -> str:
        """The row's name as a folder and `--rows` name: "SegViT, ViT-B" -> "segvit-vit-b"."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

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
    schedule: Literal["paper"] = "paper"  # the dataset's recipe (iterations, decay, lr)
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
    from segvit.modeling.variants import VARIANTS  # no torch: the table of names only

    if row.variant is not None and row.variant not in VARIANTS:
        raise SegvitError(
            f"{where}.variant: unknown variant {row.variant!r}; expected one of: "
            f"{', '.join(VARIANTS)}"
        )
    if row.crop is not None and (row.crop <= 0 or row.crop % 16):
        raise SegvitError(
            f"{where}.crop: {row.crop}: expected a positive multiple of 16 (the patch size)"
        )
    unknown = set(row.paper) - set(table.metrics)
    if unknown:
        raise SegvitError(
            f"{where}.paper: {sorted(unknown)} not among the table's metrics {table.metrics}"
        )
    for metric, value in row.paper.items():
        if isinstance(value, str) and not BOUND.fullmatch(value):
            raise SegvitError(
                f"{where}.paper.{metric}: {value!r}: expected a number, a bound such as "
                "'>250', or null"
            )


def load_figure(path: Path) -> FigureConfig:
    return _load(path, FigureConfig)


def _load(path: Path, cls: type) -> Any:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise SegvitError(f"{path}: no such experiment file") from None
    except yaml.YAMLError as err:
        raise SegvitError(f"{path}: not valid YAML ({err})") from err
    return from_mapping(cls, data, source=str(path))


def from_mapping(cls: type, data: Any, *, source: str, where: str = "") -> Any:
    """Build dataclass `cls` from `data`, checking every key and type; errors name `source`."""
    if not isinstance(data, dict):
        raise SegvitError(f"{source}: {where or 'top level'}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise SegvitError(
            f"{source}: {where}{key}: unknown key (expected one of: {', '.join(fields)})"
        )
    values = {}
    for name, f in fields.items():
        if name not in data:
            no_default = f.default is dataclasses.MISSING
            if no_default and f.default_factory is dataclasses.MISSING:
                raise SegvitError(f"{source}: {where}{name}: missing")
            continue
        values[name] = _convert(data[name], hints[name], source, f"{where}{name}")
    return cls(**values)


def _convert(value: Any, hint: Any, source: str, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, source=source, where=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(value, option, source, where)
            except SegvitError:
                continue
        return _wrong(value, hint, source, where)
    if origin is Literal:
        if value in args:
            return value
        raise SegvitError(f"{source}: {where}: {value!r} is not one of {list(args)}")
    if origin is list:
        if not isinstance(value, list):
            return _wrong(value, hint, source, where)
        return [_convert(v, args[0], source, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            return _wrong(value, hint, source, where)
        return {str(k): _convert(v, args[1], source, f"{where}.{k}") for k, v in value.items()}
    if hint is type(None):
        return value if value is None else _wrong(value, hint, source, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    return _wrong(value, hint, source, where)


def _wrong(value: Any, hint: Any, source: str, where: str) -> typing.NoReturn:
    expected = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    raise SegvitError(f"{source}: {where}: expected {expected}, got {value!r}")
