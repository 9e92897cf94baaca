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
        str, typer.Argument(help="ade20k | coco-stuff-10k | pascal-context[-59] | demo | folder")
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
    images: Annotated[Path | None, typer.Option(help="folder: the images")] = None,
    labels: Annotated[
        Path | None, typer.Option(help="folder: the label PNGs (class ids), paired by stem")
    ] = None,
    classes: Annotated[
        Path | None, typer.Option(help="folder: one class name a line; default: numbered ids")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="folder: where dataset.yaml (and split lists) go")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="folder: share of pairs for val, where there is no split")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="folder: seeds the train/val split")] = 0,
    label_suffix: Annotated[
        str, typer.Option(help="folder: the label of STEM.jpg is STEM + this")
    ] = ".png",
    ignore_index: Annotated[int, typer.Option(help="folder: the label id not scored")] = 255,
    reduce_zero_label: Annotated[
        bool, typer.Option(help="folder: id 0 is unlabelled (ignored), the rest shift down")
    ] = False,
    crop: Annotated[int, typer.Option(help="folder: the training crop")] = 512,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="folder: replace a dataset file that differs")
    ] = False,
    colors: Annotated[
        Path | None, typer.Option(help="folder: RGB colour masks; one 'R G B' a class, in order")
    ] = None,
) -> None:
    """Prepare a dataset from its official archives into mmsegmentation's layout, verified;
    `prepare folder` turns a folder of images and masks into a dataset file."""
    from segvit.data.demo import save_preview
    from segvit.data.info import get_dataset, load_dataset
    from segvit.data.prepare import prepare_dataset
    from segvit.fileio import check_folder

    if name == "folder":
        from segvit.data.folder import prepare_folder

        if images is None or labels is None or out is None:
            raise SegvitError("prepare folder: --images, --labels and --out are required")
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
        root = Path(".")
    else:
        check_folder(root, "--root")
        info = get_dataset(name)
        tree = prepare_dataset(name, src=src, root=root)
        console.print(
            f"[green]{info.name}[/] ready at {tree}: {info.num_classes} classes, "
            f"splits {info.train.images} / {info.val.images} verified",
            highlight=False,
        )
    if preview is not None:
        save_preview(info, root, preview)
        console.print(f"preview saved to {preview}", highlight=False)


def bench_data(
    dataset: Annotated[
        str, typer.Option(help="a dataset name or file whose training split is read")
    ] = "demo",
    root: Annotated[Path, typer.Option(help="data root of the prepared trees")] = Path("data"),
    num_images: Annotated[int, typer.Option(help="images timed")] = 50,
    crop: Annotated[int | None, typer.Option(help="crop size; default: the dataset's")] = None,
    synthetic: Annotated[
        bool, typer.Option(help="time ADE20K-sized synthetic JPEGs made in a temporary folder")
    ] = False,
) -> None:
    """Images per second of the training pipeline (decode + transforms) in one worker."""
    from segvit.data.bench import bench_pipeline, make_synthetic_ade
    from segvit.data.info import load_dataset

    if num_images < 1:
        raise SegvitError(f"--num-images must be at least 1, got {num_images}")
    with tempfile.TemporaryDirectory(prefix="segvit-bench-") as scratch:
        if synthetic:
            if dataset not in ("demo", "ade20k"):
                raise SegvitError("--synthetic makes ADE20K-sized images; use --dataset ade20k")
            info, root = make_synthetic_ade(Path(scratch), count=num_images), Path(scratch)
        else:
            info = load_dataset(dataset)
            if not info.root(root).is_dir():
                raise SegvitError(
                    f"no {info.name} data at {info.root(root)}; {info.how_to_get()} "
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
