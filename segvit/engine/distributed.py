"""Processes and their share of the data: torchrun set-up, DDP, and a resumable data order.

One process per device, launched by `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK in the
environment); without those variables everything runs in this single process.

The data order is a pure function of (seed, epoch, position): `ResumableSampler` yields
(epoch, index) keys, and `SeededDataset` draws each sample's augmentation from a generator
seeded by (seed, epoch, index). A resumed run therefore sees exactly the samples, and the
augmentations, that the uninterrupted run would have seen, whatever the DataLoader workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Sampler

from segvit.collective import multi_process
from segvit.data.transforms import sample_rng
from segvit.errors import SegvitError

# References: torch DistributedSampler (each rank takes every world_size-th index of a padded
# permutation).

Transform = Callable[[Any, Any, np.random.Generator], tuple[Any, Any]]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this process created the process group, so it destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise SegvitError(f"environment variable {name}={value!r}: expected an integer") from None


def default_workers() -> int:
    """Data loader processes per device: 4, or fewer on a machine with fewer cores."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def resolve_device(name: str, index: int | None = None) -> torch.device:
    """The device `--device` names (auto, cpu, cuda); CUDA where there is none is an error.

    `index` picks the GPU (a process's local rank); None: the current one.
    """
    if name not in ("auto", "cpu", "cuda"):
        raise SegvitError(f"--device {name}: expected auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise SegvitError("--device cuda: CUDA is not available on this machine")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device() if index is None else index)


def init_distributed(device: str = "auto") -> DistContext:
    """Read torchrun's variables, pick this process's device, join the process group."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            dist.init_process_group("nccl", device_id=dev)
        else:
            dist.init_process_group("gloo")
        owns = True
    return DistContext(rank, world_size, local_rank, dev, owns)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group if this process created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP across the processes (the model must already be on ctx.device); alone: unchanged.

    On GPUs, BatchNorm layers (the SETR heads') become SyncBatchNorm, as the release's configs
    ask (norm_cfg SyncBN): with 2 images per GPU, per-GPU statistics would be another model.
    The parameters stay the same objects, so an optimizer built before keeps them.
    """
    if ctx.world_size == 1:
        return model
    if ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP (or DataParallel-style) wrapper, or the model itself."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def barrier() -> None:
    if multi_process():
        dist.barrier()


def share_refusal(error: SegvitError | None) -> None:
    """Rank 0's verdict on something only it checks (the work dir, its lock), given to every
    rank at once: each raises the same one line, or all go on. Without it the other ranks
    would wait at the next barrier until its timeout. Every rank must call it, once per
    verdict; only rank 0's `error` counts."""
    message = None if error is None else str(error)
    if multi_process():
        shared = [message]
        dist.broadcast_object_list(shared, src=0)
        message = shared[0]
    if message is not None:
        raise SegvitError(message)


def split_batch(batch: int, world_size: int, device_batch: int | None) -> tuple[int, int, int]:
    """(per-process batch, per-forward batch, accumulation steps) for a total `batch`."""
    if batch % world_size:
        raise SegvitError(f"batch {batch} does not divide among {world_size} processes")
    per_rank = batch // world_size
    device_batch = device_batch or per_rank
    if per_rank % device_batch:
        raise SegvitError(
            f"device_batch {device_batch} does not divide the per-process batch "
            f"{per_rank} (batch {batch} / {world_size} processes)"
        )
    return per_rank, device_batch, per_rank // device_batch


class ResumableSampler(Sampler[tuple[int, int]]):
    """An endless stream of (epoch, index) keys: each epoch a fresh permutation, this rank's share.

    Each epoch's permutation is drawn from (seed, epoch) and padded by wrapping around to a
    multiple of world_size; rank r takes positions r, r + world_size, ... so the ranks see
    disjoint shares and, step by step, the whole batch is a contiguous run of the permutation.
    `start` is how many keys of this rank's stream to skip (what earlier runs consumed).

    Arguments:
        size: number of samples in the dataset.
        seed: the run's seed.
        rank, world_size: this process's share.
        start: position in this rank's stream where iteration begins.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        if size <= 0:
            raise SegvitError("the training set is empty; expected at least one sample")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.start = start
        self.epoch_length = math.ceil(size / world_size)  # keys per rank per epoch

    def order(self, epoch: int) -> list[int]:
        """This rank's dataset indices for `epoch`, in order."""
        perm = np.random.default_rng([self.seed, 0, epoch]).permutation(self.size).tolist()
        padded = (perm * math.ceil(self.epoch_length * self.world_size / self.size))[
            : self.epoch_length * self.world_size
        ]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, position = divmod(self.start, self.epoch_length)
        while True:
            for index in self.order(epoch)[position:]:
                yield epoch, index
            epoch, position = epoch + 1, 0

    def state_dict(self, consumed: int) -> dict[str, int]:
        """The state after `consumed` keys of this rank's stream (counted from the very start)."""
        epoch, position = divmod(consumed, self.epoch_length)
        return {
            "seed": self.seed,
            "size": self.size,
            "world_size": self.world_size,
            "epoch": epoch,
            "position": position,
        }

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue where `state` stopped; the seed, dataset size and world size must match."""
        for key in ("seed", "size", "world_size"):
            if state[key] != getattr(self, key):
                raise SegvitError(
                    f"resume: the data order was saved with {key}={state[key]}, this run has "
                    f"{key}={getattr(self, key)}; resume with the same {key}"
                )
        self.start = state["epoch"] * self.epoch_length + state["position"]


def _as_tensor(array: Any) -> Tensor:
    """A tensor view, or a copy of a numpy array whose strides torch refuses (a flip's view)."""
    return torch.as_tensor(np.ascontiguousarray(array) if isinstance(array, np.ndarray) else array)


def worker_error(err: SegvitError) -> SegvitError:
    """The one line of a SegvitError a DataLoader worker raised (a truncated image, a label
    out of range): the loader re-raises it with the worker's whole traceback as its message,
    where a loader without workers gives the line alone."""
    text = str(err)
    if not text.startswith("Caught "):  # raised in this process
        return err
    last = text.rstrip().splitlines()[-1]  # "segvit.errors.SegvitError: <the line>"
    return SegvitError(last.split(": ", 1)[1] if ": " in last else last)


class SeededDataset(Dataset):
    """Samples by (epoch, index) key, augmented with a generator seeded by (seed, epoch, index).

    `source[index]` gives a dict with "image" and "label" (or an (image, label) pair);
    `transform(image, label, rng)` returns the augmented pair. The result is
    {"image": float (3, H, W), "label": int64 (H, W)}. This is the one seeded augmentation
    path of the toolkit: the generator is `segvit.data.transforms.sample_rng`.
    """

    def __init__(self, source: Any, transform: Transform | None = None, *, seed: int) -> None:
        self.source, self.transform, self.seed = source, transform, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        epoch, index = key
        sample = self.source[index]
        if isinstance(sample, Mapping):
            image, label = sample["image"], sample["label"]
        else:
            image, label = sample
        if self.transform is not None:
            rng = sample_rng(self.seed, epoch, index)
            image, label = self.transform(image, label, rng)
        image, label = _as_tensor(image), _as_tensor(label)
        if not image.is_floating_point() or image.ndim != 3 or label.ndim != 2:
            raise SegvitError(
                f"training sample {index}: expected a float image (C, H, W) and a label (H, W) "
                f"after the transform, got {image.dtype} {tuple(image.shape)} and "
                f"{tuple(label.shape)}"
            )
        if image.shape[-2:] != label.shape:
            raise SegvitError(
                f"training sample {index}: image {tuple(image.shape)} and label "
                f"{tuple(label.shape)} differ in size"
            )
        return {"image": image, "label": label.long()}
