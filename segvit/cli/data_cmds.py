"""`segvit prepare` and `segvit bench data`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from segvit.errors import SegvitError

console = Console()


def prepare(
    name: Annotated[
        str, typer.Argument(help="ade20k | coco-stuff-10k | pascal-context[-59] | demo")
    ],
    src: Annotated[
        Path | None,
        typer.Option(
            help="an official archive, or a folder holding the archives or their "
            "extracted contents; default: ROOT/downloads, else download"
        ),
    ] = None,  # fmt: skip
    root: Annotated[Path, typer.Option(help="data root of the prepared trees")] = Path("data"),
    preview: Annotated[
        Path | None, typer.Option(help="also save a picture of samples over their labels")
    ] = None,
) -> None:
    """Prepare a dataset from its official archives into mmsegmentation's layout, verified."""
    from segvit.data.demo import save_preview
    from segvit.data.info import get_dataset
    from segvit.data.prepare import prepare_dataset
    from segvit.fileio import check_folder

    check_folder(root, "--root")
    info = get_dataset(name)
    tree = prepare_dataset(name, src=src, root=root)
    console.print(
        f"[green]{info.name}[/] ready at {tree}: {info.num_classes} classes, "
        f"splits {info.train_split} / {info.val_split} verified",
        highlight=False,
    )
    if preview is not None:
        save_preview(info, root, preview)
        console.print(f"preview saved to {preview}", highlight=False)


def bench_data(
    dataset: Annotated[str, typer.Option(help="dataset whose training split is read")] = "demo",
    root: Annotated[Path, typer.Option(help="data root of the prepared trees")] = Path("data"),
    num_images: Annotated[int, typer.Option(help="images timed")] = 50,
    crop: Annotated[int | None, typer.Option(help="crop size; default: the dataset's")] = None,
    synthetic: Annotated[
        bool, typer.Option(help="time ADE20K-sized synthetic JPEGs made in a temporary folder")
    ] = False,
) -> None:
    """Images per second of the training pipeline (decode + transforms) in one worker."""
    from segvit.data.bench import bench_pipeline, make_synthetic_ade
    from segvit.data.datasets import dataset_root
    from segvit.data.info import get_dataset

    if num_images < 1:
        raise SegvitError(f"--num-images must be at least 1, got {num_images}")
    with tempfile.TemporaryDirectory(prefix="segvit-bench-") as scratch:
        if synthetic:
            if dataset not in ("demo", "ade20k"):
                raise SegvitError("--synthetic makes ADE20K-sized images; use --dataset ade20k")
            info, root = make_synthetic_ade(Path(scratch), count=num_images), Path(scratch)
        else:
            info = get_dataset(dataset)
            if not dataset_root(info, root).is_dir():
                raise SegvitError(
                    f"no {info.name} data under {root}; run `segvit prepare {info.name}` "
                    "or pass --synthetic"
                )
        result = bench_pipeline(info, root, crop=crop, num_images=num_images)
    table = Table(title=f"training pipeline, one worker, {result.crop}x{result.crop} crop")
    for column in ("dataset", "images", "read ms/img", "transform ms/img", "images/s"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    table.add_row(result.dataset + (" (synthetic)" if synthetic else ""), str(result.images),
                  f"{result.read_ms:.1f}", f"{result.transform_ms:.1f}",
                  f"{result.images_per_s:.1f}")  # fmt: skip
    console.print(table)
