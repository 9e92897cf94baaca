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
    (tiny ViTs, CPU, minutes), with their GFLOPs counted at the paper's scale."""
    from segvit.data.prepare import prepare_dataset

    prepare_dataset("demo", src=None, root=data_root)
    reproduce_cmds.reproduce(
        ["table8"], preset="smoke", results=results, runs=runs, data_root=data_root
    )
