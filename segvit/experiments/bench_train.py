"""`segvit bench train`: time the training steps of one experiment on a synthetic batch.

The experiment (variant, dataset, crop, the paper's recipe for that dataset) is resolved
here; the step, the synthetic batch and the records it writes are segvit.bench.train_step's.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import torch
from torch import Tensor

from segvit.analysis.flops import count_flops
from segvit.analysis.hardware import describe_device, peak_for, training_tflops
from segvit.bench.train_step import (
    CPU_BATCH,
    CUDA_BATCH,
    BenchConfig,
    BenchResult,
    synthetic_batch,
    train_step,
)
from segvit.engine.distributed import resolve_device
from segvit.engine.logging import memory_mb
from segvit.engine.optim import recipe_optimizer
from segvit.engine.train import autocast_dtype
from segvit.errors import SegvitError
from segvit.experiments.spec import resolve


def _timed(step: Callable[[], Tensor], device: torch.device) -> tuple[float, Tensor]:
    """Wall seconds of `step()`, with CUDA's queue drained on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tic = time.perf_counter()
    loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - tic, loss


def bench_train(cfg: BenchConfig) -> BenchResult:
    """Time `cfg.steps` training steps after `cfg.warmup` untimed ones; see the module doc."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads)
    try:
        return _bench(cfg)
    finally:
        torch.set_num_threads(threads)


def _bench(cfg: BenchConfig) -> BenchResult:
    # The paper's recipe for this dataset: its optimiser settings and schedule length.
    experiment = resolve(
        cfg.variant, cfg.dataset, crop=cfg.crop, seed=cfg.seed, backbone=cfg.backbone,
        freeze_backbone=cfg.freeze_backbone,
    )  # fmt: skip
    crop, dataset, recipe = experiment.crop, experiment.dataset, experiment.recipe
    device = resolve_device(cfg.device)
    batch = cfg.batch or (CUDA_BATCH if device.type == "cuda" else CPU_BATCH)
    amp_dtype = autocast_dtype(replace(recipe, amp=cfg.amp), device)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
    else:
        baseline = memory_mb(device)
    # Random weights: the step costs the same.
    model = experiment.with_recipe(tiny=cfg.tiny, pretrained=None).build_model()
    gflops = count_flops(model).gflops if cfg.flops else None  # on the CPU, before it moves
    model = model.to(device).train()
    optimizer = recipe_optimizer(model, recipe)
    loss_fn = experiment.criterion()
    generator = torch.Generator().manual_seed(cfg.seed)
    images, labels = synthetic_batch(batch, crop, dataset.num_classes, generator=generator)
    images, labels = images.to(device), labels.to(device)

    def step() -> Tensor:
        return train_step(
            model, optimizer, images, labels, loss_fn, amp_dtype=amp_dtype,
            clip_grad=recipe.clip_grad,
        )  # fmt: skip

    times: list[float] = []
    try:
        for i in range(cfg.warmup + cfg.steps):
            seconds, loss = _timed(step, device)
            if i >= cfg.warmup:
                times.append(seconds)
    except torch.cuda.OutOfMemoryError:
        raise SegvitError(
            f"{cfg.variant} at {crop}x{crop}, batch {batch}: out of GPU memory; try a smaller "
            "--batch"
        ) from None
    final_loss = float(loss)
    if not math.isfinite(final_loss):
        raise SegvitError(f"{cfg.variant}: the loss is {final_loss} after {len(times)} steps")

    seconds = statistics.median(times)
    tflops = None if gflops is None else training_tflops(gflops, batch / seconds)
    mixed = device.type == "cuda" and amp_dtype is not None  # peaks are for bf16 tensor cores
    peak = peak_for(torch.cuda.get_device_name(device)) if mixed else None
    return BenchResult(
        variant=cfg.variant,
        dataset=cfg.dataset,
        crop=crop,
        batch=batch,
        tiny=cfg.tiny,
        device=describe_device(device),
        dtype="bfloat16 autocast" if amp_dtype else "float32",
        steps=cfg.steps,
        seconds_per_iter=seconds,
        images_per_second=batch / seconds,
        peak_memory_mb=memory_mb(device),
        memory_kind="cuda max allocated" if device.type == "cuda" else "process peak RSS",
        baseline_memory_mb=baseline,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        final_loss=final_loss,
        schedule_hours=seconds * (recipe.batch / batch) * recipe.iters / 3600,
        model_gflops=gflops,
        train_tflops=tflops,
        peak_tflops=peak.bf16_tflops if peak else None,
        peak_label=peak.label if peak else None,
        mfu=tflops / peak.bf16_tflops if peak and tflops is not None else None,
        backbone=cfg.backbone,
        frozen=cfg.freeze_backbone,
    )


def _quiet() -> None:
    """A fresh process hides what the CLI hides (torchvision's torch.jit.script warning)."""
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)


def bench_frozen_and_fine_tuned(cfg: BenchConfig) -> tuple[BenchResult, BenchResult]:
    """(fine-tuned, frozen) results of `cfg`, each timed in a fresh process so that each
    peak memory (a CPU's peak RSS only ever grows) is that mode's own."""
    context = multiprocessing.get_context("spawn")
    results = []
    for frozen in (False, True):
        with ProcessPoolExecutor(1, mp_context=context, initializer=_quiet) as pool:
            results.append(pool.submit(bench_train, replace(cfg, freeze_backbone=frozen)).result())
    return results[0], results[1]
