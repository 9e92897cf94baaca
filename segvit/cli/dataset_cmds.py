"""`segvit datasets`: the built-in datasets and any dataset files, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def datasets(
    files: Annotated[
        list[Path] | None, typer.Argument(help="dataset files (.yaml) to check and list too")
    ] = None,
    data_root: Annotated[Path, typer.Option(help="where built-in sets are prepared")] = Path(
        "data"
    ),
    check: Annotated[
        bool, typer.Option(help="pair every split of the files given, count the images")
    ] = True,
) -> None:
    """List the datasets: classes, crop, splits, where the data is and whether it is there."""
    from segvit.data.catalog import DATASETS, load_dataset
    from segvit.data.datasets import list_pairs
    from segvit.data.prepare import verify_dataset

    specs = list(DATASETS.values()) + [load_dataset(f) for f in files or []]
    table = Table(title="datasets (--dataset NAME or FILE)", title_justify="left")
    for column in ("dataset", "classes", "crop", "train / val", "folder", "status"):
        table.add_column(
            column,
            justify="right" if column in ("classes", "crop") else "left",
            no_wrap=column == "dataset",
        )
    for spec in specs:
        folder = spec.root(data_root)
        counts = f"{spec.train.count or '?'} / {spec.val.count or '?'}"
        if spec.source and check:
            verify_dataset(spec, data_root)  # paired, and the counts the file states
            pairs = [len(list_pairs(spec, folder, s)) for s in ("train", "val")]
            counts = f"{pairs[0]} / {pairs[1]}"
        status = "[green]ready[/]" if folder.is_dir() else f"missing: {spec.how_to_get()}"
        shown = f"{folder}\n(from {spec.source})" if spec.source else str(folder)
        table.add_row(spec.name, str(spec.num_classes), str(spec.crop), counts, shown, status)
    console.print(table)
