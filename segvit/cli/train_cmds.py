"""`segvit train`, `segvit eval`, `segvit predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from segvit.cli.model_cmds import BackboneOption, LayersOption, parse_layers
from segvit.errors import SegvitError

console = Console()


def train(
    variant: Annotated[str, typer.Argument(help="a variant name (see `segvit variants`)")],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="a name or a dataset file; default: the preset's (smoke: demo), else ade20k"
        ),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="the recipe: paper (the paper's), smoke (CPU) or smoke-scratch (random backbone)"
        ),
    ] = "paper",
    crop: Annotated[int | None, typer.Option(help="training crop; default: the dataset's")] = None,
    iters: Annotated[int | None, typer.Option(help="iterations; default: the recipe's")] = None,
    batch: Annotated[int | None, typer.Option(help="total batch; default: the recipe's")] = None,
    lr: Annotated[float | None, typer.Option(help="backbone lr; default: the recipe's")] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="default: runs/VARIANT-DATASET-PRESET")
    ] = None,
    data_root: Annotated[Path, typer.Option(help="prepared datasets")] = Path("data"),
    resume: Annotated[bool, typer.Option(help="continue the run in --work-dir")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="replace the run in --work-dir (its weights, log, scores)")
    ] = False,
    amp: Annotated[bool, typer.Option(help="bf16 autocast on GPUs")] = True,
    pretrained: Annotated[
        str | None,
        typer.Option(help="hub, smoke, a weights file, or none; default: the recipe's"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="data loader processes per device; default: by cores")
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds weights, data order, augmentation")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="also TensorBoard events in WORK_DIR/tensorboard")
    ] = False,
    backbone: BackboneOption = None,
    layers: LayersOption = None,
    freeze_backbone: Annotated[
        bool | None, typer.Option("--freeze-backbone", help="train the head alone")
    ] = None,
) -> None:
    """Train a variant; multi-GPU with `torchrun --nproc_per_node N -m segvit.cli train ...`."""
    from segvit.engine.checkpoint import CheckpointPaths, check_work_dir
    from segvit.engine.logging import TENSORBOARD_MISSING, tensorboard_available
    from segvit.experiments.spec import resolve, train_experiment

    if tensorboard and not tensorboard_available():  # before any data or model is built
        raise SegvitError(TENSORBOARD_MISSING)

    experiment = resolve(
        variant, dataset, recipe=preset, crop=crop, iters=iters, batch=batch, lr=lr, amp=amp,
        seed=seed, backbone=backbone, layers=parse_layers(layers),
        freeze_backbone=freeze_backbone,
    )  # fmt: skip
    if pretrained is not None:
        from segvit.engine.recipe import Backbone

        experiment = experiment.with_recipe(pretrained=Backbone.parse(pretrained))
    name = experiment.dataset.name
    work_dir = work_dir or Path("runs") / f"{variant}-{name}-{preset}"
    paths = CheckpointPaths(work_dir)
    # Before the smoke backbone's minutes of pretraining: what the work dir cannot take.
    check_work_dir(paths, resume=resume, overwrite=overwrite)
    try:
        result = train_experiment(
            experiment, work_dir=work_dir, data_root=data_root, device=device, resume=resume,
            overwrite=overwrite, num_workers=workers, tensorboard=tensorboard,
        )  # fmt: skip
    except KeyboardInterrupt:
        from segvit.engine.recipe import Backbone

        if paths.state.is_file():
            said = f"interrupted: {paths.state} holds the last checkpoint; rerun with --resume"
        elif experiment.recipe.pretrained == Backbone.SMOKE:  # the run itself saves at once
            said = "interrupted before training began; rerun the same command (the smoke "
            said += "backbone's pretraining goes on from its last checkpoint)"
        else:
            said = "interrupted before training began; nothing was saved"
        Console(stderr=True).print(said, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    best = (
        f", best mIoU {result.best_metric:.2f} ({result.best_weights})"
        if result.best_weights
        else ""
    )
    console.print(
        f"trained {variant} on {name}: {result.iterations} iterations in {result.seconds:.0f} s; "
        f"weights {result.last_weights}{best}"
    )


CHECKPOINT_HELP = (
    "a weights file from `segvit train`, a run folder, release:NAME, a release .pth file, "
    "an exported model folder, hf:OWNER/NAME or a .onnx file"
)


def eval_command(
    checkpoint: Annotated[str, typer.Argument(help=CHECKPOINT_HELP)],
    dataset: Annotated[
        str | None,
        typer.Option(help="a name or a dataset file; default: the one it was trained on"),
    ] = None,
    ms: Annotated[bool, typer.Option("--ms", help="multi-scale 0.5-1.75 with flip")] = False,
    mode: Annotated[str, typer.Option(help="slide (the paper) or whole")] = "slide",
    stride: Annotated[
        int | None, typer.Option(help="sliding-window stride; default: the paper's for the crop")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="a .json file, or a folder for it; default: beside the checkpoint"),
    ] = None,
    data_root: Annotated[Path, typer.Option(help="prepared datasets")] = Path("data"),
    max_images: Annotated[int | None, typer.Option(help="only the first N images")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[
        str, typer.Option(help="fp32 (scores compare), bf16 (autocast), or auto")
    ] = "fp32",
) -> None:
    """Evaluate a checkpoint: mIoU, aAcc, mAcc and per-class IoU, as mmsegmentation counts."""
    from segvit.api import load
    from segvit.engine.eval_output import eval_output
    from segvit.engine.evaluate import EvalSettings, evaluate
    from segvit.engine.logging import json_safe, wants_bar
    from segvit.fileio import write_json

    settings = EvalSettings(mode=mode, multi_scale=ms, stride=stride, max_images=max_images)
    model = load(checkpoint, dataset=dataset, device=device)
    spec = model.dataset
    root = str(data_root.resolve())
    path = eval_output(out, checkpoint, spec.name, settings, data_root=root)
    try:
        results = evaluate(
            model.network, spec, settings, data_root=data_root, progress=wants_bar(),
            precision=precision,
        )  # fmt: skip
    except KeyboardInterrupt:
        Console(stderr=True).print(f"interrupted: nothing was written to {path}", highlight=False)
        raise typer.Exit(130) from None
    results |= {"checkpoint": checkpoint, "data_root": root}
    scales = "ms" if ms else "ss"
    _print_results(results, spec, title=f"{checkpoint} on {spec.name} ({scales})")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, json_safe(results), indent=1)  # strict JSON: NaN (no pixels) as null
    console.print(f"wrote {path}")


def _print_results(results: dict, spec, *, title: str) -> None:
    from segvit.experiments.tables import format_cell

    table = Table(title=title, title_justify="left")
    for column in ("class", "IoU", "Acc"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, iou, acc in zip(results["classes"], results["IoU"], results["Acc"], strict=True):
        table.add_row(name, format_cell(iou), format_cell(acc))
    console.print(table)
    summary = f"mIoU {results['mIoU']:.2f}  aAcc {results['aAcc']:.2f}  mAcc {results['mAcc']:.2f}"
    fewer = spec.num_classes - 1  # a set scored also without its background (PASCAL-Context)
    if spec.background is not None and f"mIoU{fewer}" in results:
        summary += f"  mIoU ({fewer} classes) {results[f'mIoU{fewer}']:.2f}"
    console.print(f"[bold]{summary}[/]  ({results['images']} images, {results['seconds']:.0f} s)")


def predict(
    checkpoint: Annotated[str, typer.Argument(help=CHECKPOINT_HELP)],
    images: Annotated[list[Path], typer.Argument(help="image files")],
    dataset: Annotated[
        str | None, typer.Option(help="class names and test scales; default: as trained")
    ] = None,
    out: Annotated[Path, typer.Option(help="folder for the pictures")] = Path("predictions"),
    ms: Annotated[bool, typer.Option("--ms", help="multi-scale with flip")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 where the hardware has bf16 units), fp32 or bf16")
    ] = "auto",
) -> None:
    """Segment images: NAME_overlay.png (palette and legend) and NAME_labels.png (class ids)."""
    from segvit.api import load
    from segvit.engine.backend import model_device, resolve_precision
    from segvit.engine.predict import predict_images
    from segvit.fileio import check_folder

    check_folder(out, "--out")
    model = load(checkpoint, dataset=dataset, device=device)  # segvit.load: one path
    resolve_precision(precision, model_device(model.network))  # a bad name: before any image
    written = predict_images(
        model.network, images, model.dataset, out, multi_scale=ms, precision=precision
    )
    for source, overlay, labels in written:
        console.print(f"{source} -> {overlay}, {labels}", highlight=False)
