"""`segvit variants` and `segvit flops`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def variants() -> None:
    """List the model variants: the paper's rows by name."""
    from segvit.modeling.variants import VARIANTS

    table = Table(title="SegViT variants")
    for column in ("variant", "backbone", "loss", "what it is"):
        table.add_column(column)
    for name, variant in VARIANTS.items():
        table.add_row(name, variant.spec.label, variant.criterion(1).name, variant.description)
    console.print(table)


def flops(
    variant: Annotated[str, typer.Argument(help="a variant name (see `segvit variants`)")],
    dataset: Annotated[
        str, typer.Option(help="a name or dataset file: class count, crop")
    ] = "ade20k",
    crop: Annotated[int | None, typer.Option(help="crop size; default: the dataset's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Count GFLOPs of one crop as the paper does (fvcore, eval mode, fused attention counted)."""
    from segvit.analysis.flops import count_flops
    from segvit.experiments.spec import resolve

    experiment = resolve(variant, dataset, crop=crop)  # bad input fails before a model is built
    report = count_flops(experiment.build_model(for_flops=True))
    if as_json:
        print(json.dumps(report.to_dict() | {"dataset": experiment.dataset.name}))
        return
    table = Table(title=f"{variant} on {dataset}, {report.crop}x{report.crop} crop")
    table.add_column("part")
    table.add_column("GFLOPs", justify="right")
    table.add_row("backbone", f"{report.backbone_gflops:.2f}")
    table.add_row("head + prediction", f"{report.head_gflops:.2f}")
    table.add_row("total", f"{report.gflops:.2f}", style="bold")
    table.add_row("parameters (M)", f"{report.params_m:.1f}")
    console.print(table)
