"""Two processes on two GPUs through NCCL: after one bf16 DDP step of SegViT ViT-B at its
paper crop, both ranks hold the same weights, though each started from its own seed and
stepped on its own batch."""

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu

SCRIPT = Path(__file__).parents[1] / "ddp_step.py"


def test_two_nccl_ranks_agree_after_a_step(cuda, tmp_path, load_by_path):
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 GPUs for NCCL, found {torch.cuda.device_count()}")
    ddp_step = load_by_path("ddp_step", SCRIPT)
    seen, weights = ddp_step.run_two_ranks("cuda", tmp_path, "segvit_b", 512, tiny=False)
    assert [(s["rank"], s["world_size"], s["backend"]) for s in seen] == [
        (0, 2, "nccl"), (1, 2, "nccl")
    ]  # fmt: skip
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
