"""`segvit prepare` and `segvit bench data`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


PREVIEW_HELP = "also save a picture of samples over their labels"


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
    preview: Annotated[Path | None, typer.Option(help=PREVIEW_HELP)] = None,
) -> None:
    """Prepare a built-in dataset from its official archives into mmsegmentation's layout,
    verified (also `segvit prepare NAME`)."""
    from segvit.data.catalog import get_dataset
    from segvit.data.prepare import prepare_dataset
    from segvit.fileio import check_folder

    check_folder(root, "--root")
    info = get_dataset(name)
    tree = prepare_dataset(info, src=src, root=root)
    console.print(
        f"[green]{info.name}[/] ready at {tree}: {info.num_classes} classes, "
        f"splits {info.train.images} / {info.val.images} verified",
        highlight=False,
    )
    _preview(info, root, preview)


def prepare_folder(
    images: Annotated[Path, typer.Option(help="the images")],
    labels: Annotated[Path, typer.Option(help="the label PNGs (class ids), paired by stem")],
    out: Annotated[Path, typer.Option(help="where dataset.yaml (and split lists) go")],
    classes: Annotated[
        Path | None, typer.Option(help="one class name a line; default: numbered ids")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="share of pairs for val, where there is no split")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="seeds the train/val split")] = 0,
    label_suffix: Annotated[
        str, typer.Option(help="the label of STEM.jpg is STEM + this")
    ] = ".png",
    ignore_index: Annotated[int, typer.Option(help="the label id not scored")] = 255,
    reduce_zero_label: Annotated[
        bool, typer.Option(help="id 0 is unlabelled (ignored), the rest shift down")
    ] = False,
    crop: Annotated[int, typer.Option(help="the training crop")] = 512,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace a dataset file that differs")
    ] = False,
    colors: Annotated[
        Path | None, typer.Option(help="RGB colour masks: one 'R G B' a class, in order")
    ] = None,
    preview: Annotated[Path | None, typer.Option(help=PREVIEW_HELP)] = None,
) -> None:
    """Turn a folder of images and masks into a dataset file, verified."""
    from segvit.data.catalog import load_dataset
    from segvit.data.folder import prepare_folder
    from segvit.fileio import check_folder

    check_folder(out, "--out")
    try:
        path = prepare_folder(
            images, labels, out, classes=classes, val_fraction=val_fraction, seed=seed,
            label_suffix=label_suffix, ignore_index=ignore_index,
            reduce_zero_label=reduce_zero_label, crop=crop, overwrite=overwrite, colors=colors,
        )  # fmt: skip
    except KeyboardInterrupt:  # every file is written atomically, the dataset file last
        console.print("interrupted: no dataset file was written", highlight=False)
        raise typer.Exit(130) from None
    info = load_dataset(path)
    console.print(
        f"[green]{info.name}[/] verified: {info.num_classes} classes, "
        f"{info.train.count} train / {info.val.count} val images; wrote {path}",
        highlight=False,
    )
    _preview(info, Path("."), preview)


def _preview(info, root: Path, preview: Path | None) -> None:
    if preview is not None:
        from segvit.data.demo import save_preview

        save_preview(info, root, preview)
        console.print(f"preview saved to {preview}", highlight=False)


def bench_data(
    dataset: Annotated[
        str | None,
        typer.Option(help="a dataset name or file whose training split is read; default: demo"),
    ] = None,
    root: Annotated[Path, typer.Option(help="data root of the prepared trees")] = Path("data"),
    num_images: Annotated[int, typer.Option(help="images timed")] = 50,
    crop: Annotated[int | None, typer.Option(help="crop size; default: the dataset's")] = None,
    synthetic: Annotated[
        bool, typer.Option(help="time ADE20K-sized synthetic JPEGs made in a temporary folder")
    ] = False,
) -> None:
    """Images per second of the training pipeline (decode + transforms) in one worker."""
    from segvit.bench.data import bench_data as run_bench

    result = run_bench(dataset, root, crop=crop, num_images=num_images, synthetic=synthetic)
    table = Table(title=f"training pipeline, one worker, {result.crop}x{result.crop} crop")
    for column in ("dataset", "images", "read ms/img", "transform ms/img", "images/s"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    table.add_row(result.dataset + (" (synthetic)" if synthetic else ""), str(result.images),
                  f"{result.read_ms:.1f}", f"{result.transform_ms:.1f}",
                  f"{result.images_per_s:.1f}")  # fmt: skip
    console.print(table)
