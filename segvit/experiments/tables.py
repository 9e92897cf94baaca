"""Result tables: the paper's numbers beside the measured ones, never mixed.

Each table is written as results/TABLE.csv (one row per paper row; `paper_<metric>`,
`<metric>` and `diff_<metric>` columns, a status, the preset and the machine) and
results/TABLE.md (the same, readable). A measured column only ever holds what a run of this
toolkit produced; rows that were not run or cannot be say so in `status`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from segvit.engine.recipe import Recipe
from segvit.experiments.config import PaperValue, TableConfig
from segvit.fileio import write_text

NOT_IMPLEMENTED = "not implemented"
NOT_RUN = "not run"


@dataclass
class RowResult:
    """What a run measured for one row (metric -> value) and how it went."""

    status: str  # "done", "partial", NOT_RUN, NOT_IMPLEMENTED, "cited [N]", or an error
    measured: dict[str, float] = field(default_factory=dict)


def machine_label() -> str:
    """Where numbers were measured: the GPU when one is present, else the CPU."""
    from segvit.analysis.hardware import this_machine

    return this_machine()


def build_frame(
    table: TableConfig, results: list[RowResult], *, recipe: Recipe, machine: str
) -> pd.DataFrame:
    """One frame row per table row; mIoU differences only where the run used the paper's recipe
    (a smoke run's mIoU is on the demo data and not comparable); GFLOPs always compare."""
    records = []
    for row, result in zip(table.rows, results, strict=True):
        record: dict[str, Any] = {"row": row.name, "variant": row.variant or "", **row.labels}
        for metric in table.metrics:
            paper = row.paper.get(metric)
            measured = result.measured.get(metric)
            record[f"paper_{metric}"] = _paper_cell(paper)
            record[metric] = measured
            comparable = metric == "gflops" or recipe.paper_schedule
            record[f"diff_{metric}"] = (
                round(measured - paper, 2)
                if comparable and measured is not None and isinstance(paper, float)
                else None
            )
        record.update(status=result.status, preset=recipe.name, machine=machine)
        records.append(record)
    return pd.DataFrame.from_records(records)


def _paper_cell(value: PaperValue) -> PaperValue:
    return value if value is None or isinstance(value, str) else float(value)


def write_table(table: TableConfig, frame: pd.DataFrame, results_dir: Path, *, note: str) -> Path:
    """Write TABLE.csv and TABLE.md atomically; returns the markdown path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    csv_path = results_dir / f"{table.table}.csv"
    md_path = results_dir / f"{table.table}.md"
    write_text(csv_path, frame.to_csv(index=False))
    write_text(md_path, render_markdown(table, frame, note=note))
    return md_path


def render_markdown(table: TableConfig, frame: pd.DataFrame, *, note: str) -> str:
    lines = [f"# {table.table}: {table.caption}", "", note, ""]
    shown = frame.drop(columns=["preset", "machine"])
    header = list(shown.columns)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for _, record in shown.iterrows():
        cells = (format_cell(record[c], signed=c.startswith("diff_")) for c in header)
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines += ["", *[f"- {n}" for n in table.notes]]
    return "\n".join(lines) + "\n"


def format_cell(value: Any, *, signed: bool = False) -> str:
    """A table cell: blank for missing values, numbers to two decimals (signed: with +/-)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return str(value)


def gather_readme(results_dir: Path) -> Path:
    """results/README.md: every table's markdown in order, and the figures."""
    tables = sorted(results_dir.glob("table*.md"), key=lambda p: int(p.stem[5:] or 0))
    figures = sorted(results_dir.glob("figure*.png"))
    parts = [
        "# Results",
        "",
        "Written by `segvit tables` from the files beside this one. Each table says which",
        "preset and machine produced its measured columns; paper columns are the paper's.",
        "",
    ]
    for figure in figures:
        parts += [f"![{figure.stem}]({figure.name})", ""]
    for table in tables:
        parts += [table.read_text().replace("# ", "## ", 1), ""]
    out = results_dir / "README.md"
    write_text(out, "\n".join(parts))
    return out
