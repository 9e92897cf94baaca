"""`segvit demo`: the main job on the embedded default."""

from __future__ import annotations

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
    from segvit.experiments.demo import run_demo
    from segvit.fileio import check_folder

    console = reproduce_cmds.console
    check_folder(results, "--results"), check_folder(runs, "--runs")  # before minutes of work
    done = run_demo(
        data_root=data_root, results=results, runs=runs, console=console,
        on_table=reproduce_cmds.show_table,
    )  # fmt: skip
    console.print(f"training curves: {done.curves}")
    if done.evidence is not None:
        start, trained = done.evidence.start, done.evidence.trained
        console.print(
            f"QU probe ({done.qu_probe}): own-cell attention {trained.own_attention[0]:.4f} "
            f"after training (uniform {start.uniform:.4f}); position share of its tokens "
            f"{start.position_share:.2f} at the start (random backbone "
            f"{done.evidence.random_backbone.position_share:.3f})"
        )
    console.print("  ".join(f"{name} {seconds:.0f} s" for name, seconds in done.seconds))
