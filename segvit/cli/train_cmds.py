"""`segvit train`, `segvit eval`, `segvit predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from segvit.engine.distributed import resolve_device
from segvit.engine.evaluate import (
    EvalConfig,
    check_dataset,
    evaluate,
    load_checkpoint,
    write_results,
)
from segvit.engine.predict import read_rgb, save_prediction, segment
from segvit.engine.recipe import get_preset, run_training, training_configs
from segvit.experiments.tables import format_cell

console = Console()


def train(
    variant: Annotated[str, typer.Argument(help="a variant name (see `segvit variants`)")],
    dataset: Annotated[str | None, typer.Option(help="default: the preset's (smoke: demo)")] = None,
    preset: Annotated[
        str, typer.Option(help="paper (the paper's recipe) or smoke (CPU)")
    ] = "paper",
    iters: Annotated[int | None, typer.Option(help="iterations; default: the preset's")] = None,
    batch: Annotated[int | None, typer.Option(help="total batch; default: the preset's")] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="default: runs/VARIANT-DATASET-PRESET")
    ] = None,
    data_root: Annotated[Path, typer.Option(help="prepared datasets")] = Path("data"),
    resume: Annotated[bool, typer.Option(help="continue the run in --work-dir")] = False,
    amp: Annotated[bool, typer.Option(help="bf16 autocast on GPUs")] = True,
    pretrained: Annotated[
        str | None, typer.Option(help="hub, a weights file, or none; default: the preset's")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="data loader processes per device; default: by cores")
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds weights, data order, augmentation")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Train a variant; multi-GPU with `torchrun --nproc_per_node N -m segvit.cli train ...`."""
    chosen = get_preset(preset)
    name = dataset or chosen.dataset or "ade20k"
    overrides = {"resume": resume, "amp": amp, "seed": seed, "device": device}
    if workers is not None:
        overrides["num_workers"] = workers
    if iters is not None:
        overrides["iters"] = iters
    if batch is not None:
        overrides["batch"] = batch
    if pretrained is not None:
        overrides["pretrained"] = None if pretrained == "none" else pretrained
    model_cfg, train_cfg, eval_cfg = training_configs(
        variant,
        preset=chosen,
        dataset=name,
        work_dir=work_dir or Path("runs") / f"{variant}-{name}-{preset}",
        data_root=data_root,
        overrides=overrides,
    )
    result = run_training(model_cfg, train_cfg, eval_cfg)
    best = (
        f", best mIoU {result.best_metric:.2f} ({result.best_weights})"
        if result.best_weights
        else ""
    )
    console.print(
        f"trained {variant} on {name}: {result.iterations} iterations in {result.seconds:.0f} s; "
        f"weights {result.last_weights}{best}"
    )


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="a weights file from `segvit train`")],
    dataset: Annotated[str | None, typer.Option(help="default: the one it was trained on")] = None,
    ms: Annotated[bool, typer.Option("--ms", help="multi-scale 0.5-1.75 with flip")] = False,
    mode: Annotated[str, typer.Option(help="slide (the paper) or whole")] = "slide",
    out: Annotated[
        Path | None, typer.Option(help="where the JSON goes; default: beside it")
    ] = None,
    data_root: Annotated[Path, typer.Option(help="prepared datasets")] = Path("data"),
    max_images: Annotated[int | None, typer.Option(help="only the first N images")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Evaluate a checkpoint: mIoU, aAcc, mAcc and per-class IoU, as mmsegmentation counts."""
    model = load_checkpoint(checkpoint, device=resolve_device(device))
    name = dataset or model.meta.dataset
    check_dataset(model, name, checkpoint)
    if mode not in ("slide", "whole"):
        raise typer.BadParameter("expected slide or whole", param_hint="--mode")
    cfg = EvalConfig(dataset=name, data_root=str(data_root), mode=mode, multi_scale=ms,
                     max_images=max_images, device=device)  # fmt: skip
    results = evaluate(model, cfg)
    _print_results(results, title=f"{checkpoint} on {name} ({'ms' if ms else 'ss'})")
    path = write_results(results, out or checkpoint.parent, f"eval_{name}_{'ms' if ms else 'ss'}")
    console.print(f"wrote {path}")


def _print_results(results: dict, *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("class", "IoU", "Acc"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, iou, acc in zip(results["classes"], results["IoU"], results["Acc"], strict=True):
        table.add_row(name, format_cell(iou), format_cell(acc))
    console.print(table)
    summary = f"mIoU {results['mIoU']:.2f}  aAcc {results['aAcc']:.2f}  mAcc {results['mAcc']:.2f}"
    if "mIoU59" in results:
        summary += f"  mIoU (59 classes) {results['mIoU59']:.2f}"
    console.print(f"[bold]{summary}[/]  ({results['images']} images, {results['seconds']:.0f} s)")


def predict(
    checkpoint: Annotated[Path, typer.Argument(help="a weights file from `segvit train`")],
    images: Annotated[list[Path], typer.Argument(help="image files")],
    out: Annotated[Path, typer.Option(help="folder for the pictures")] = Path("predictions"),
    ms: Annotated[bool, typer.Option("--ms", help="multi-scale with flip")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Segment images: STEM_overlay.png (palette and legend) and STEM_labels.png (class ids)."""
    model = load_checkpoint(checkpoint, device=resolve_device(device))
    for path in images:
        rgb = read_rgb(path)
        overlay, labels = save_prediction(
            rgb, segment(model, rgb, multi_scale=ms), model.meta.dataset, out, path.stem
        )
        console.print(f"{path} -> {overlay}, {labels}")
