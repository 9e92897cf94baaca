"""Two processes on two GPUs through NCCL: after one bf16 DDP step of SegViT ViT-B at its
paper crop, both ranks hold the same weights, though each started from its own seed and
stepped on its own batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segvit.experiments.launch import Launch

pytestmark = pytest.mark.gpu

SCRIPT = Path(__file__).parents[1] / "ddp_step.py"


def test_two_nccl_ranks_agree_after_a_step(cuda, tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 GPUs for NCCL, found {torch.cuda.device_count()}")
    launch = Launch(gpus=2)
    command = [sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(),
               str(SCRIPT), "cuda", str(tmp_path), "segvit_b", "512", "0"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(s["rank"], s["world_size"], s["backend"]) for s in seen] == [
        (0, 2, "nccl"), (1, 2, "nccl")
    ]  # fmt: skip
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
