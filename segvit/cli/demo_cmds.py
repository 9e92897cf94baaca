"""`segvit demo`: the main job on the embedded default."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from segvit.cli import reproduce_cmds


def demo(
    data_root: Annotated[Path, typer.Option(help="where the demo set is written")] = Path("data"),
    results: Annotated[Path, typer.Option(help="where table8.csv/.md go")] = Path("results"),
    runs: Annotated[Path, typer.Option(help="checkpoints and per-row state")] = Path("runs"),
) -> None:
    """Table 8 at smoke scale: the four structures trained and evaluated on the demo data
    (tiny ViTs, CPU, minutes) from one backbone pretrained on it, with their GFLOPs counted
    at the paper's scale."""
    from segvit.data.catalog import get_dataset
    from segvit.data.prepare import prepare_dataset
    from segvit.experiments.smoke_backbone import smoke_backbone

    console = reproduce_cmds.console
    stages: list[tuple[str, float]] = []
    began = time.perf_counter()
    prepare_dataset(get_dataset("demo"), src=None, root=data_root)
    stages.append(("demo set", time.perf_counter() - began))
    # Every row starts from this backbone, as every paper row starts from AugReg; built
    # here, before the sweep, so its time is seen (the rows would build it otherwise).
    console.print("[bold]pretrain[/] the smoke backbone (once; cached beside the demo set)")
    tic = time.perf_counter()
    weights = smoke_backbone(data_root)
    stages.append(("smoke backbone", time.perf_counter() - tic))
    console.print(f"smoke backbone: {weights} ({stages[-1][1]:.0f} s)")
    tic = time.perf_counter()
    reproduce_cmds.reproduce(
        ["table8"], preset="smoke", results=results, runs=runs, data_root=data_root
    )
    stages.append(("table 8 rows", time.perf_counter() - tic))
    _curves(runs, results)
    _shrunk_evidence(runs, results, data_root)
    stages.append(("total", time.perf_counter() - began))
    console.print("  ".join(f"{name} {seconds:.0f} s" for name, seconds in stages))


def _curves(runs: Path, results: Path) -> None:
    """Beside the smoke table: the four rows' losses, learning rates and mIoU (curves.png)."""
    from segvit.analysis.curves import draw_curves
    from segvit.engine.recipe import get_recipe
    from segvit.experiments.config import load_table
    from segvit.experiments.reproduce import experiment_file, results_dir_for, row_dir

    table, recipe = load_table(experiment_file("table8")), get_recipe("smoke")
    rows = [row_dir(runs, table.table, recipe.name, row) for row in table.rows]
    out = draw_curves(rows, results_dir_for(results, recipe) / "curves.png")
    reproduce_cmds.console.print(f"training curves: {out}")


def _shrunk_evidence(runs: Path, results: Path, data_root: Path) -> None:
    """Beside the smoke table: whether QU found its place in the Shrunk row (qu_probe.md)."""
    from segvit.engine.recipe import get_recipe
    from segvit.experiments.config import load_table
    from segvit.experiments.qu_evidence import shrunk_evidence
    from segvit.experiments.reproduce import experiment_file, results_dir_for, row_dir
    from segvit.fileio import write_text

    table = load_table(experiment_file("table8"))
    (row,) = [r for r in table.rows if r.variant == "segvit_shrunk_b"]
    recipe = get_recipe("smoke")
    weights = row_dir(runs, table.table, recipe.name, row) / "final.pt"
    if not weights.is_file():
        return
    evidence = shrunk_evidence(weights, data_root)
    path = results_dir_for(results, recipe) / "qu_probe.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, evidence.markdown(recipe.iters))
    start, trained = evidence.start, evidence.trained
    reproduce_cmds.console.print(
        f"QU probe ({path}): own-cell attention {trained.own_attention[0]:.4f} after training "
        f"(uniform {start.uniform:.4f}); position share of its tokens {start.position_share:.2f} "
        f"at the start (random backbone {evidence.random_backbone.position_share:.3f})"
    )
