"""The training loop: AdamW + poly schedule, DDP, gradient accumulation, atomic resumable saves.

Everything that decides the weights is saved and restored (model, optimizer, schedule, scaler,
every RNG, the position in the data order), so a run killed at any moment and resumed from
its last checkpoint ends with the same weights, bit for bit on a CPU, as an uninterrupted one.
All processes share one seed (as mmsegmentation does by default), so rank 0's RNG states
stand for every rank's.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from segvit.collective import all_reduce_mean
from segvit.engine import checkpoint as ckpt
from segvit.engine.distributed import (
    DistContext,
    ResumableSampler,
    SeededDataset,
    Transform,
    barrier,
    cleanup,
    default_workers,
    init_distributed,
    share_refusal,
    split_batch,
    unwrap,
    worker_error,
    wrap_model,
)
from segvit.engine.logging import Progress, RunLog, Window, memory_mb
from segvit.engine.optim import build_schedule, current_lrs, recipe_optimizer
from segvit.engine.recipe import Recipe
from segvit.errors import SegvitError
from segvit.fileio import exclusive_lock, write_json
from segvit.modeling.output import SegOutput

# References: SegViT release (mmseg 0.24 IterBasedRunner recipe: batch 16, grad clip 35,
# evaluation every 4000 iterations); nanoGPT train.py (gradient accumulation with no_sync).

LOCK_NAME = ".train.lock"  # in the work dir, held by the training that writes there

LossFn = Callable[[SegOutput, Tensor], Mapping[str, Tensor]]  # (output, labels) -> {"loss", ...}
EvaluateFn = Callable[[nn.Module], Mapping[str, Any]]  # model (eval mode) -> {"mIoU", ...}


@dataclass(frozen=True)
class TrainConfig:
    """One training run: the recipe (what decides the weights) and where and how it runs."""

    recipe: Recipe
    work_dir: str  # checkpoints, config.json and log.jsonl go here
    record: Mapping[str, str | int | bool] = field(default_factory=dict)  # what is trained
    # (variant, dataset, loss...): written to config.json and every weights file; a resumed
    # run must agree on it.
    device: str = "auto"  # "auto" (CUDA if present), "cpu" or "cuda"
    resume: bool = False  # continue from work_dir's last.state.pt (from scratch if none)
    overwrite: bool = False  # start afresh where a run is, removing its files first
    num_workers: int = field(default_factory=default_workers)  # loader processes per device
    best_metric: str = "mIoU"  # evaluation key that picks best.pt (higher is better)
    tensorboard: bool = False  # also TensorBoard scalars in work_dir/tensorboard (needs it)
    label: str = ""  # titles the progress bar and lines when the run is not the user's own

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise SegvitError(f"train config: num_workers must be >= 0, got {self.num_workers}")

    def to_dict(self) -> dict[str, Any]:
        run = {"work_dir": self.work_dir, "device": self.device, "resume": self.resume,
               "overwrite": self.overwrite, "num_workers": self.num_workers,
               "best_metric": self.best_metric}  # fmt: skip
        return self.recipe.to_dict() | dict(self.record) | run

    @property
    def must_match(self) -> tuple[str, ...]:
        return Recipe.weight_shaping_fields() + tuple(self.record)


@dataclass(frozen=True)
class TrainResult:
    iterations: int  # the iteration the run ended at (cfg.recipe.iters)
    last_weights: Path  # work_dir/last.pt
    best_weights: Path | None  # work_dir/best.pt; None without evaluation or once deleted
    best_metric: float | None  # its value of cfg.best_metric
    losses: dict[str, float]  # the last iteration's losses, averaged over processes
    seconds: float  # wall time of this call


def train(
    cfg: TrainConfig,
    *,
    model: nn.Module,
    train_set: Dataset,
    loss_fn: LossFn,
    transform: Transform | None = None,
    evaluate_fn: EvaluateFn | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train `model` (`model(images) -> SegOutput`) in place; see TrainConfig.

    `train_set[i]` is {"image", "label"} (or a pair); `transform(image, label, rng)` augments it
    with the numpy Generator it is given (seeded per sample, so resuming replays it) and
    returns a float (3, H, W) image and an (H, W) label. `loss_fn` runs outside autocast.
    `evaluate_fn(model)` runs on every process with the bare model in eval mode and must
    return cfg.best_metric; it cannot disturb the training RNGs. `on_iteration(i)` runs after
    iteration i and its saves (tests use it to kill a run).
    """
    ctx = init_distributed(cfg.device)
    try:
        with _work_dir_lock(Path(cfg.work_dir), ctx):
            run = _Run(cfg, ctx, model, train_set, loss_fn, transform, evaluate_fn, on_iteration)
            return run.run()
    finally:
        cleanup(ctx)


@contextmanager
def _work_dir_lock(work: Path, ctx: DistContext) -> Iterator[None]:
    """Rank 0 holds the work dir for the whole run: a second training into it (a second
    `--resume` too) would interleave checkpoints, config and log, so it fails at once, on
    every rank with the same line (share_refusal)."""
    if work.exists() and not work.is_dir():
        raise SegvitError(f"--work-dir {work}: a file is there; expected a folder")
    with ExitStack() as held:
        refusal = None
        if ctx.is_main:
            try:
                held.enter_context(exclusive_lock(work / LOCK_NAME, f"a training into {work}"))
            except SegvitError as err:
                refusal = err
        share_refusal(refusal)
        yield


class _Run:
    """The state of one call of `train`, split into its stages."""

    def __init__(
        self,
        cfg: TrainConfig,
        ctx: DistContext,
        model: nn.Module,
        train_set: Dataset,
        loss_fn: LossFn,
        transform: Transform | None,
        evaluate_fn: EvaluateFn | None,
        on_iteration: Callable[[int], None] | None,
    ) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.data = SeededDataset(train_set, transform, seed=cfg.recipe.seed)
        self.loss_fn, self.evaluate_fn, self.on_iteration = loss_fn, evaluate_fn, on_iteration
        self.paths = ckpt.CheckpointPaths(Path(cfg.work_dir))
        self.per_rank, self.device_batch, self.accum = split_batch(
            cfg.recipe.batch, ctx.world_size, cfg.recipe.device_batch
        )
        state = self._open_work_dir()
        self.net = model.to(ctx.device)
        self.optimizer = recipe_optimizer(self.net, cfg.recipe)
        self.schedule = build_schedule(
            self.optimizer,
            total_iters=cfg.recipe.iters,
            warmup_iters=cfg.recipe.warmup_iters,
            power=cfg.recipe.power,
            warmup_ratio=cfg.recipe.warmup_ratio,
            min_lr=cfg.recipe.min_lr,
        )
        fp16 = cfg.recipe.amp and cfg.recipe.amp_dtype == "float16" and ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=fp16)
        self.amp_dtype = autocast_dtype(cfg.recipe, ctx.device)
        self.sampler = ResumableSampler(
            len(train_set), seed=cfg.recipe.seed, rank=ctx.rank, world_size=ctx.world_size
        )
        self.start, self.saved_at = 0, None
        self.best: float | None = None
        self.best_iter: int | None = None
        self.rng: dict[str, Any] | None = None
        if state is not None:
            self._restore(state)
        else:
            ckpt.seed_everything(cfg.recipe.seed)
        self.log = RunLog(self.paths.log, enabled=ctx.is_main, tensorboard=cfg.tensorboard)
        self.log.truncate_after(self.start)  # records of iterations this run will redo
        if ctx.is_main:
            derived = {
                "world_size": ctx.world_size,
                "per_forward_batch": self.device_batch,
                "accumulation": self.accum,
            }
            write_json(self.paths.config, cfg.to_dict() | derived)

    def _open_work_dir(self) -> dict[str, Any] | None:
        """Create the work dir; the training state to resume from, or None for a fresh run."""
        work = self.paths.work_dir
        refusal = None
        if self.ctx.is_main:
            try:
                ckpt.check_work_dir(
                    self.paths, resume=self.cfg.resume, overwrite=self.cfg.overwrite
                )
            except SegvitError as err:
                refusal = err
            else:
                work.mkdir(parents=True, exist_ok=True)
                ckpt.remove_stale_temporaries(work)  # left by a save that a kill interrupted
                if self.cfg.overwrite:
                    self.paths.clear()
        share_refusal(refusal)  # every rank stops with rank 0's line, or all go on
        return ckpt.resumable_state(
            self.paths,
            resume=self.cfg.resume,
            config=self.cfg.to_dict(),
            must_match=self.cfg.must_match,
        )

    def _restore(self, state: dict[str, Any]) -> None:
        unwrap(self.net).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if state["scaler"]:  # a disabled scaler saves {}
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.start = self.saved_at = state["iteration"]
        self.best, self.best_iter = state["best"]["value"], state["best"]["iteration"]
        self.rng = state["rng"]  # restored last, just before the first step

    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        began = time.perf_counter()
        loader = DataLoader(
            self.data,
            batch_size=self.device_batch,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            pin_memory=ctx.device.type == "cuda",
            # Its own generator: worker seeds stay fixed and the global torch RNG untouched.
            generator=torch.Generator().manual_seed(cfg.recipe.seed),
        )
        batches = iter(loader)
        if self.rng is not None:
            ckpt.restore_rng(self.rng, ctx.device)
        model = wrap_model(self.net, ctx)
        model.train()
        if self.saved_at is None:  # a fresh run: fail early on an unwritable work dir, and
            self._save(0, None)  # make even a kill before the first interval resumable
        progress = Progress(
            total=cfg.recipe.iters, initial=self.start, enabled=ctx.is_main, label=cfg.label
        )
        window = Window()
        losses: dict[str, float] = {}
        try:
            for iteration in range(self.start + 1, cfg.recipe.iters + 1):
                tic = time.perf_counter()
                lrs = current_lrs(self.optimizer)
                losses, timings = self._step(model, batches, iteration)
                self.schedule.step()
                window.add(losses | timings | {"time": time.perf_counter() - tic})
                progress.advance(losses["loss"], lrs["lr"])
                last = iteration == cfg.recipe.iters
                if iteration % cfg.recipe.log_interval == 0 or last:
                    means = window.flush()
                    remaining = means["time"] * (cfg.recipe.iters - iteration)
                    record = {"kind": "train", "iter": iteration, **means, **lrs}
                    record |= {"memory_mb": memory_mb(ctx.device), "eta_s": remaining}
                    self.log.write(record)
                    progress.report(record, total=cfg.recipe.iters)
                metrics = None
                if self.evaluate_fn is not None and (
                    iteration % cfg.recipe.eval_interval == 0 or last
                ):
                    metrics = self._evaluate(iteration, progress)
                if iteration % cfg.recipe.checkpoint_interval == 0 or last:
                    self._save(iteration, metrics)
                if self.on_iteration is not None:
                    self.on_iteration(iteration)
        finally:
            progress.close()
            del batches  # stops the DataLoader workers, also when the run fails
        if ctx.is_main and not self.paths.last.is_file():  # resumed at the end, last.pt deleted:
            self._save(cfg.recipe.iters, None)  # the restored state holds its weights
        barrier()
        best = self.paths.best if self.best is not None and self.paths.best.is_file() else None
        return TrainResult(
            iterations=cfg.recipe.iters,
            last_weights=self.paths.last,
            best_weights=best,
            best_metric=self.best,
            losses=losses,
            seconds=time.perf_counter() - began,
        )

    def _step(
        self, model: nn.Module, batches: Iterator[dict[str, Tensor]], iteration: int
    ) -> tuple[dict[str, float], dict[str, float]]:
        """One optimizer step over `accum` micro-batches: (losses, grad norm and data time)."""
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, Tensor] = {}
        data_time = 0.0
        for micro in range(self.accum):
            tic = time.perf_counter()
            try:
                batch = next(batches)
            except SegvitError as err:
                raise worker_error(err) from None
            images = batch["image"].to(self.ctx.device, non_blocking=True)  # (b, 3, H, W)
            labels = batch["label"].to(self.ctx.device, non_blocking=True)  # (b, H, W)
            data_time += time.perf_counter() - tic
            # Gradients are all-reduced once per step, on the last micro-batch only.
            accumulating = micro < self.accum - 1 and isinstance(model, DistributedDataParallel)
            with model.no_sync() if accumulating else nullcontext():
                terms = forward_backward(
                    model, images, labels, self.loss_fn,
                    amp_dtype=self.amp_dtype, scaler=self.scaler, divide=self.accum,
                )  # fmt: skip
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
        names = sorted(sums)
        means = all_reduce_mean(torch.stack([sums[n] for n in names]) / self.accum).tolist()
        losses = dict(zip(names, means, strict=True))
        if not math.isfinite(losses["loss"]):
            raise self._diverged(iteration, f"the loss is {losses['loss']}")
        norm = optimizer_step(self.net, self.optimizer, self.scaler, self.cfg.recipe.clip_grad)
        if not self.scaler.is_enabled() and not torch.isfinite(norm):  # fp16 skips such steps
            raise self._diverged(iteration, f"the gradient norm is {norm.item()}")
        return losses, {"grad_norm": norm.item(), "data_time": data_time}

    def _diverged(self, iteration: int, what: str) -> SegvitError:
        kept = f"the last good checkpoint is {self.paths.state} (iteration {self.saved_at})"
        return SegvitError(
            f"iteration {iteration}: {what}; stopped before updating the weights, "
            f"nothing saved; {kept}"
        )

    def _evaluate(self, iteration: int, progress: Progress) -> dict[str, Any]:
        self.net.eval()
        try:  # evaluation must not shift the training RNGs
            with ckpt.preserved_rng(self.ctx.device), torch.no_grad():
                metrics = dict(self.evaluate_fn(self.net))
        finally:
            self.net.train()
        key = self.cfg.best_metric
        if not isinstance(metrics.get(key), numbers.Real):  # numpy scalars count as numbers
            raise SegvitError(
                f"evaluate_fn returned {sorted(metrics)}; expected a number under "
                f"{key!r} (best_metric)"
            )
        record = {"kind": "eval", "iter": iteration, **metrics}
        self.log.write(record)
        progress.report(record, total=self.cfg.recipe.iters)
        value = float(metrics[key])
        if math.isfinite(value) and (self.best is None or value > self.best):
            self.best, self.best_iter = value, iteration
            if self.ctx.is_main:
                sd = unwrap(self.net).state_dict()
                ckpt.save_weights(self.paths.best, sd, self._meta(iteration, metrics))
        return metrics

    def _meta(self, iteration: int, metrics: Mapping[str, Any] | None) -> ckpt.Meta:
        """What a weights file says about itself: the model's meta, iteration, its metric."""
        metric = None if metrics is None else float(metrics[self.cfg.best_metric])
        return ckpt.weights_meta(
            unwrap(self.net),
            record=self.cfg.record,
            iteration=iteration,
            metric=(self.cfg.best_metric, metric),
        )

    def _save(self, iteration: int, metrics: Mapping[str, Any] | None) -> None:
        """Training state first (what resuming needs), then the weights-only file."""
        self.saved_at = iteration
        if not self.ctx.is_main:
            return
        model_state = unwrap(self.net).state_dict()
        state = {
            "format": 1,
            "iteration": iteration,
            "config": self.cfg.to_dict(),
            "model": model_state,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.capture_rng(self.ctx.device),
            "sampler": self.sampler.state_dict(iteration * self.per_rank),
            "best": {"value": self.best, "iteration": self.best_iter},
        }
        ckpt.save_state(self.paths.state, state)
        ckpt.save_weights(self.paths.last, model_state, self._meta(iteration, metrics))


def autocast_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the forward pass: the recipe's on CUDA, None (float32) elsewhere."""
    if recipe.amp and device.type == "cuda":
        return getattr(torch, recipe.amp_dtype)
    return None


def forward_backward(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    loss_fn: LossFn,
    *,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    divide: int = 1,
) -> dict[str, Tensor]:
    """Forward (under autocast when `amp_dtype` is set), loss outside autocast, backward of
    loss / `divide` (scaled by `scaler` when given); the detached float loss terms."""
    autocast = torch.autocast(images.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    with autocast:
        output = model(images)
    terms = loss_fn(output, labels)
    if "loss" not in terms:
        raise SegvitError(f"loss_fn returned {sorted(terms)}; expected a 'loss' entry")
    loss = terms["loss"] / divide
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return {name: value.detach().float() for name, value in terms.items()}


def optimizer_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    clip_grad: float,
) -> Tensor:
    """Unscale, clip the global gradient norm to `clip_grad`, step; the norm before clipping."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return norm
