"""`segvit bench train`: seconds per training iteration and peak memory of a variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from segvit.cli.model_cmds import BackboneOption

console = Console()


def bench_train(
    variant: Annotated[str, typer.Argument(help="a variant name (see `segvit variants`)")],
    dataset: Annotated[
        str, typer.Option(help="a name or dataset file: class count, crop")
    ] = "ade20k",
    crop: Annotated[int | None, typer.Option(help="crop size; default: the dataset's")] = None,
    batch: Annotated[
        int | None, typer.Option(help="images per step on this device; default: 2 CPU, 8 CUDA")
    ] = None,
    steps: Annotated[int, typer.Option(help="timed steps (the median is reported)")] = 10,
    warmup: Annotated[int, typer.Option(help="untimed steps first")] = 3,
    tiny: Annotated[bool, typer.Option(help="width-192 ViT of the same depth")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    amp: Annotated[bool, typer.Option(help="bf16 autocast on CUDA (a CPU runs float32)")] = True,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads; default: torch's own choice")
    ] = None,
    flops: Annotated[
        bool, typer.Option(help="count GFLOPs (fvcore, on the CPU) for the MFU figure")
    ] = True,
    save: Annotated[
        bool, typer.Option(help="also write RUNS/bench/NAME.json for `reproduce --plan`")
    ] = False,
    runs: Annotated[Path, typer.Option(help="the runs folder --save writes into")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    backbone: BackboneOption = None,
    freeze_backbone: Annotated[
        bool, typer.Option("--freeze-backbone", help="time head-only steps (backbone frozen)")
    ] = False,
    compare_frozen: Annotated[
        bool,
        typer.Option(
            "--compare-frozen", help="time fine-tuned and frozen steps, each in a fresh process"
        ),
    ] = False,
) -> None:
    """Time training steps (forward, loss, backward, clip, AdamW) on a synthetic batch."""
    from segvit.bench.train_step import BenchConfig, write_record
    from segvit.experiments.bench_train import bench_frozen_and_fine_tuned
    from segvit.experiments.bench_train import bench_train as run_bench

    cfg = BenchConfig(
        variant=variant,
        dataset=dataset,
        crop=crop,
        batch=batch,
        steps=steps,
        warmup=warmup,
        tiny=tiny,
        device=device,
        amp=amp,
        threads=threads,
        flops=flops,
        backbone=backbone,
        freeze_backbone=freeze_backbone,
    )
    if compare_frozen:
        with Console(stderr=True).status(f"timing {variant} fine-tuned, then frozen"):
            fine, frozen = bench_frozen_and_fine_tuned(cfg)
        _print_modes(fine, frozen, as_json=as_json)
        return
    with Console(stderr=True).status(f"timing {warmup} + {steps} steps of {variant}"):
        result = run_bench(cfg)
    saved = write_record(result, runs / "bench") if save else None
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    size = "tiny " if result.tiny else ""
    table = Table(
        title=f"{size}{variant} training step on {dataset}, {result.crop}x{result.crop} crop, "
        f"batch {result.batch}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("device", result.device)
    table.add_row("precision", result.dtype)
    median = f"seconds / iteration (median of {result.steps})"
    table.add_row(median, f"{result.seconds_per_iter:.3f}")
    table.add_row("images / second", f"{result.images_per_second:.2f}")
    table.add_row(f"peak memory, MB ({result.memory_kind})", f"{result.peak_memory_mb:.0f}")
    table.add_row("  of which before the model was built", f"{result.baseline_memory_mb:.0f}")
    table.add_row("parameters (M)", f"{result.params_m:.1f}")
    table.add_row("last loss", f"{result.final_loss:.3f}")
    table.add_row("paper schedule on this device (hours)", f"{result.schedule_hours:.1f}")
    if result.model_gflops is not None and result.train_tflops is not None:
        table.add_row("forward GFLOPs per image (fvcore)", f"{result.model_gflops:.4g}")
        table.add_row("training TFLOP/s (6 x GFLOPs x images/s)", f"{result.train_tflops:.3g}")
    table.add_row("model FLOPs utilisation (MFU)", _mfu(result))
    console.print(table)
    if saved is not None:
        console.print(f"saved {saved}", highlight=False, soft_wrap=True)


def _print_modes(fine, frozen, *, as_json: bool) -> None:
    """Fine-tuned and frozen figures side by side."""
    if as_json:
        print(json.dumps({"fine_tuned": fine.to_dict(), "frozen": frozen.to_dict()}))
        return
    on = f" on {fine.backbone}" if fine.backbone else ""
    table = Table(title=f"{'tiny ' if fine.tiny else ''}{fine.variant}{on}, {fine.dataset}, "
                  f"{fine.crop}x{fine.crop} crop, batch {fine.batch}, {fine.device}")  # fmt: skip
    for column in ("figure", "fine-tuned", "frozen backbone"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    table.add_row("precision", fine.dtype, frozen.dtype)
    table.add_row(f"seconds / iteration (median of {fine.steps})",
                  f"{fine.seconds_per_iter:.3f}", f"{frozen.seconds_per_iter:.3f}")  # fmt: skip
    table.add_row(f"peak memory, MB ({fine.memory_kind})", f"{fine.peak_memory_mb:.0f}",
                  f"{frozen.peak_memory_mb:.0f}")  # fmt: skip
    table.add_row("  of which before the model was built", f"{fine.baseline_memory_mb:.0f}",
                  f"{frozen.baseline_memory_mb:.0f}")  # fmt: skip
    table.add_row("last loss", f"{fine.final_loss:.3f}", f"{frozen.final_loss:.3f}")
    console.print(table)


def _mfu(result) -> str:
    if result.mfu is not None:
        return f"{result.mfu:.1%} of {result.peak_label} {result.peak_tflops:.0f} bf16 TFLOP/s"
    if result.model_gflops is None:
        return "unknown (--no-flops)"
    if result.device.startswith("cpu"):
        return "unknown (no peak for CPUs)"
    if result.dtype == "float32":
        return "unknown (peaks are for bf16: float32 run)"
    return "unknown (no peak known for this device)"


def bench_predict(
    variant: Annotated[str, typer.Argument(help="a variant name")] = "segvit_b",
    dataset: Annotated[
        str, typer.Option(help="dataset name or file: the classes and the test geometry")
    ] = "ade20k",
    height: Annotated[int, typer.Option(help="image height in pixels")] = 3024,
    width: Annotated[int, typer.Option(help="image width in pixels")] = 4032,
    ms: Annotated[bool, typer.Option("--ms", help="multi-scale 0.5-1.75 with flip")] = False,
    full: Annotated[
        bool, typer.Option(help="the old path: full-resolution probabilities, then argmax")
    ] = False,
    tiny: Annotated[bool, typer.Option(help="width-192 ViT of the same depth")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    backend: Annotated[
        str, typer.Option(help="torch, onnx, or both (torch,onnx): times each and the ratio")
    ] = "torch",
    precision: Annotated[str, typer.Option(help="fp32, bf16 or auto (torch backend)")] = "fp32",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Peak memory and time of one prediction of a random photo (a model with the dataset's
    classes at its crop, random weights), measured in a fresh process per backend."""
    import functools

    import torch

    from segvit.analysis.hardware import cpu_name
    from segvit.bench.predict import bench_predict as run_bench
    from segvit.bench.predict import parse_backends
    from segvit.data.catalog import load_dataset
    from segvit.inference import InferenceSettings, window_batch
    from segvit.modeling.variants import build_model

    backends = parse_backends(backend)
    info = load_dataset(dataset)
    builder = functools.partial(
        build_model, variant, num_classes=info.num_classes, crop=info.crop, tiny=tiny
    )
    settings = InferenceSettings.for_dataset(
        info, info.crop, multi_scale=ms, window_batch=window_batch(torch.device("cpu"))
    )
    results = []
    for name in backends:
        said = f"one {'ms' if ms else 'ss'} prediction, {width}x{height}, {name}"
        with Console(stderr=True).status(said):
            results.append(
                run_bench(
                    builder,
                    settings=settings,
                    dataset=info,
                    height=height,
                    width=width,
                    full_path=full,
                    threads=threads,
                    backend=name,
                    precision=precision if name == "torch" else "fp32",
                )  # fmt: skip
            )
    cpu = cpu_name()
    if as_json:
        record = {r.backend: r.to_dict() for r in results} | {"cpu": cpu}
        if len(results) == 1:
            record = results[0].to_dict() | {"cpu": cpu}
        print(json.dumps(record))
        return
    first = results[0]
    table = Table(title=f"{variant} predicting a {width}x{height} image ({first.path}) on {cpu}")
    table.add_column("figure")
    for result in results:
        table.add_column(f"{result.backend} {result.precision}", justify="right")
    table.add_row("scales", *["6 with flip" if r.multi_scale else "1" for r in results])
    table.add_row("seconds", *[f"{r.seconds:.1f}" for r in results])
    table.add_row("peak RSS, MiB", *[f"{r.peak_rss_mb:.0f}" for r in results])
    table.add_row("  of which before the prediction", *[f"{r.before_rss_mb:.0f}" for r in results])
    table.add_row("threads", *[str(r.threads) for r in results])
    console.print(table)
    if len(results) == 2:
        ratio = results[1].seconds / results[0].seconds
        console.print(
            f"{results[1].backend} / {results[0].backend} time: {ratio:.2f}x on {cpu}",
            highlight=False,
        )
