"""One DDP training step per process, launched by torchrun from the tests (not a test itself).

    torchrun ... tests/ddp_step.py DEVICE OUT VARIANT CROP TINY

`run_two_ranks` launches it the way a one-node, 2-GPU `segvit reproduce` launches training.

Each rank builds the model from its own seed and takes its own batch, so only DDP (weights
broadcast from rank 0, gradients averaged) can make the ranks agree afterwards. Writes
OUT/rankR.pt (weights after the step) and OUT/rankR.json (what the process saw).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from segvit.bench.train_step import synthetic_batch, train_step
from segvit.engine.distributed import cleanup, init_distributed, wrap_model
from segvit.engine.optim import build_optimizer
from segvit.engine.recipe import RECIPES
from segvit.experiments.launch import Launch
from segvit.modeling.variants import build_model, get_variant

NUM_CLASSES = 8


def main(device: str, out: Path, variant: str, crop: int, tiny: bool) -> None:
    ctx = init_distributed(device)
    torch.manual_seed(ctx.rank)  # different initial weights per rank: DDP must broadcast
    model = build_model(variant, num_classes=NUM_CLASSES, crop=crop, tiny=tiny).to(ctx.device)
    net = wrap_model(model, ctx)
    optimizer = build_optimizer(model, lr=1e-3)
    generator = torch.Generator().manual_seed(100 + ctx.rank)  # different data per rank
    images, labels = synthetic_batch(2, crop, NUM_CLASSES, generator=generator)
    amp = torch.bfloat16 if ctx.device.type == "cuda" else None
    loss = train_step(
        net,
        optimizer,
        images.to(ctx.device),
        labels.to(ctx.device),
        get_variant(variant).criterion(NUM_CLASSES),
        amp_dtype=amp,
        clip_grad=RECIPES["paper"].clip_grad,
    )
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, out / f"rank{ctx.rank}.pt")
    seen = {"rank": ctx.rank, "world_size": ctx.world_size, "loss": float(loss),
            "backend": dist.get_backend() if dist.is_initialized() else None}  # fmt: skip
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(seen))
    cleanup(ctx)


def run_two_ranks(
    device: str, out: Path, variant: str, crop: int, *, tiny: bool, env: dict | None = None
) -> tuple[list[dict], list[dict]]:
    """torchrun this script on two ranks with `Launch(gpus=2)`'s options, outside any
    distributed job of the caller; each rank's record and weights after the step."""
    command = [sys.executable, "-m", "torch.distributed.run", *Launch(gpus=2).torchrun_args(),
               __file__, device, str(out), variant, str(crop), "1" if tiny else "0"]  # fmt: skip
    root = str(Path(__file__).parents[1])  # the checkout whose segvit the ranks import
    full_env = os.environ | {"PYTHONPATH": root} | (env or {})
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        full_env.pop(var, None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=full_env)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    weights = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return seen, weights


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1")
