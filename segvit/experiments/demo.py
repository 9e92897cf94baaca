"""`segvit demo`: Table 8 at smoke scale on the demo set, with the four rows' training curves
and the QU probe of the Shrunk row beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from segvit.analysis.curves import draw_curves
from segvit.analysis.qu_probe import ShrunkEvidence
from segvit.data.catalog import get_dataset
from segvit.data.prepare import prepare_dataset
from segvit.engine.recipe import get_recipe
from segvit.experiments.config import TableConfig
from segvit.experiments.qu_evidence import shrunk_evidence
from segvit.experiments.reproduce import reproduce_tables
from segvit.experiments.smoke_backbone import smoke_backbone
from segvit.experiments.sweep import Sweep
from segvit.fileio import write_text

TABLE = "table8"  # the paper's four structures, small enough to train on a CPU
PRESET = "smoke"
SHRUNK = "segvit_shrunk_b"  # the row the QU probe looks into


@dataclass
class Demo:
    """What the demo wrote, and how long each part took."""

    table: Path | None = None  # OUT/table8.md
    curves: Path | None = None  # OUT/curves.png
    qu_probe: Path | None = None  # OUT/qu_probe.md; None when the Shrunk row has no weights
    evidence: ShrunkEvidence | None = None
    seconds: list[tuple[str, float]] = field(default_factory=list)  # (part, seconds)


def demo_sweep(*, data_root: Path, results: Path, runs: Path) -> Sweep:
    return Sweep(
        get_recipe(PRESET), tables=(TABLE,), results=results, runs_dir=runs, data_root=data_root
    )


def run_demo(
    *,
    data_root: Path = Path("data"),
    results: Path = Path("results"),
    runs: Path = Path("runs"),
    console: Console | None = None,
    on_table: Callable[[TableConfig, Path], None] | None = None,
) -> Demo:
    """Write the demo set, pretrain the smoke backbone, reproduce Table 8 with the smoke
    preset, then draw the rows' curves and probe the Shrunk row's QU."""
    console = console or Console()
    sweep = demo_sweep(data_root=data_root, results=results, runs=runs)
    demo = Demo()
    began = time.perf_counter()
    prepare_dataset(get_dataset("demo"), src=None, root=data_root)
    demo.seconds.append(("demo set", time.perf_counter() - began))
    # Every row starts from this backbone, as every paper row starts from AugReg; built
    # here, before the sweep, so its time is seen (the rows would build it otherwise).
    console.print("[bold]pretrain[/] the smoke backbone (once; cached beside the demo set)")
    tic = time.perf_counter()
    weights = smoke_backbone(data_root)
    demo.seconds.append(("smoke backbone", time.perf_counter() - tic))
    console.print(f"smoke backbone: {weights} ({demo.seconds[-1][1]:.0f} s)")
    tic = time.perf_counter()
    (demo.table,) = reproduce_tables(sweep, console=console, on_table=on_table)
    demo.seconds.append(("table 8 rows", time.perf_counter() - tic))
    demo.curves = demo_curves(sweep)
    shrunk = _shrunk_evidence(sweep)
    if shrunk is not None:
        demo.qu_probe, demo.evidence = shrunk
    demo.seconds.append(("total", time.perf_counter() - began))
    return demo


def demo_curves(sweep: Sweep) -> Path:
    """Beside the smoke table: the rows' losses, learning rates and mIoU (curves.png)."""
    (table,) = sweep.load_tables()
    rows = [sweep.row_files(table, row).folder for row in table.rows]
    return draw_curves(rows, sweep.out_dir / "curves.png")


def _shrunk_evidence(sweep: Sweep) -> tuple[Path, ShrunkEvidence] | None:
    """Beside the smoke table: whether QU found its place in the Shrunk row (qu_probe.md)."""
    (table,) = sweep.load_tables()
    (row,) = [r for r in table.rows if r.variant == SHRUNK]
    weights = sweep.row_files(table, row).weights
    if not weights.is_file():
        return None
    evidence = shrunk_evidence(weights, sweep.data_root)
    path = sweep.out_dir / "qu_probe.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, evidence.markdown(sweep.recipe.iters))
    return path, evidence
