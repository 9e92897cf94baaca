"""Averages over the processes of a job (torchrun), which are the identity in one process.

The losses average their mask count with them and the training engine its logged terms;
they sit below both, so that neither reaches into the other.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

# References: Mask2Former's criterion (the mask count averaged over ranks, at least 1).


def multi_process() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The mean of `tensor` over all processes (a new tensor; the input is left alone)."""
    out = tensor.detach().clone()
    if multi_process():
        dist.all_reduce(out)
        out /= dist.get_world_size()
    return out


def reduce_count(count: Tensor | float, device: torch.device | None = None) -> Tensor:
    """The mean over processes of a count (e.g. of masks in a loss), at least 1.

    Dividing each process's loss sum by this makes the DDP-averaged gradient equal to the one
    of the whole batch normalised by its total count.
    """
    count = torch.as_tensor(count, dtype=torch.float32, device=device)
    return all_reduce_mean(count).clamp(min=1.0)
