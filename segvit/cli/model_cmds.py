"""`segvit variants`, `segvit backbones` and `segvit flops`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()

BackboneOption = Annotated[
    str | None,
    typer.Option(help="a timm ViT name in place of the variant's (see `segvit backbones`)"),
]
LayersOption = Annotated[
    str | None,
    typer.Option(help="tapped layers, 1-based, e.g. 8,16,24; default: the backbone's"),
]


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """`--layers` as 0-based indices (None when not given)."""
    from segvit.modeling.families import parse_layers as parse

    return None if text is None else parse(text)


def variants() -> None:
    """List the model variants: the paper's rows by name."""
    from segvit.modeling.variants import VARIANTS

    table = Table(title="SegViT variants")
    for column in ("variant", "backbone", "loss", "what it is"):
        table.add_column(column)
    for name, variant in VARIANTS.items():
        table.add_row(name, variant.spec.label, variant.criterion(1).name, variant.description)
    console.print(table)


def backbones() -> None:
    """List the plain-ViT families a SegViT head can sit on (`--backbone NAME`)."""
    from segvit.modeling.families import FAMILIES, default_taps

    taps = " (ViT-B), ".join(",".join(str(i + 1) for i in default_taps(d)) for d in (12, 24))
    said = f"Backbone families: any timm name of a family works. Default taps {taps} (ViT-L); "
    console.print(f"{said}other depths: a third, two thirds, the last.", highlight=False)
    for f in FAMILIES:
        mean = "/".join(f"{m:g}" for m in f.norm.mean)
        std = "/".join(f"{s:g}" for s in f.norm.std)
        console.print(f"\n[bold]{f.label}[/]  --backbone {f.example}", highlight=False)
        console.print(
            f"  patch {f.patch_size}, {f.prefix_tokens} prefix tokens, {f.position} positions, "
            f"mean {mean} std {std} (0..255), licence {f.licence}",
            highlight=False,
        )
        if f.note:
            console.print(f"  {f.note}", highlight=False)


def flops(
    variant: Annotated[str, typer.Argument(help="a variant name (see `segvit variants`)")],
    dataset: Annotated[
        str, typer.Option(help="a name or dataset file: class count, crop")
    ] = "ade20k",
    crop: Annotated[int | None, typer.Option(help="crop size; default: the dataset's")] = None,
    backbone: BackboneOption = None,
    layers: LayersOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Count GFLOPs of one crop as the paper does (fvcore, eval mode, fused attention counted)."""
    from segvit.analysis.flops import count_flops
    from segvit.experiments.spec import resolve

    experiment = resolve(  # bad input fails before a model is built
        variant, dataset, crop=crop, backbone=backbone, layers=parse_layers(layers)
    )
    report = count_flops(experiment.build_model(for_flops=True))
    if as_json:
        print(json.dumps(report.to_dict() | {"dataset": experiment.dataset.name}))
        return
    on = f" on {backbone}" if backbone else ""
    table = Table(title=f"{variant}{on} on {dataset}, {report.crop}x{report.crop} crop")
    table.add_column("part")
    table.add_column("GFLOPs", justify="right")
    table.add_row("backbone", f"{report.backbone_gflops:.2f}")
    table.add_row("head + prediction", f"{report.head_gflops:.2f}")
    table.add_row("total", f"{report.gflops:.2f}", style="bold")
    table.add_row("parameters (M)", f"{report.params_m:.1f}")
    console.print(table)
