"""Rank shares and resumable data order, seeded samples, batch split, and a 2-process gloo run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segvit.collective import all_reduce_mean, reduce_count
from segvit.engine.distributed import ResumableSampler, SeededDataset, init_distributed, split_batch
from segvit.engine.train import train
from segvit.errors import SegvitError


def _take(sampler, n):
    stream = iter(sampler)
    return [next(stream) for _ in range(n)]


def test_each_epoch_is_a_fresh_seeded_permutation():
    keys = _take(ResumableSampler(10, seed=3), 30)
    epochs = [[i for e, i in keys if e == epoch] for epoch in range(3)]
    assert all(sorted(order) == list(range(10)) for order in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert keys == _take(ResumableSampler(10, seed=3), 30)
    assert keys != _take(ResumableSampler(10, seed=4), 30)


@pytest.mark.parametrize("size", [12, 11])
def test_ranks_take_disjoint_shares_of_equal_length(size):
    shares = [ResumableSampler(size, seed=0, rank=r, world_size=2).order(0) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 6
    assert set(shares[0]) | set(shares[1]) == set(range(size))
    if size == 12:
        assert not set(shares[0]) & set(shares[1])
    # Step by step, the two ranks together read a contiguous run of one permutation.
    perm = np.random.default_rng([0, 0, 0]).permutation(size).tolist()
    assert [shares[r][j] for j in range(2) for r in range(2)] == perm[:4]


def test_a_restored_sampler_continues_the_same_stream():
    full = ResumableSampler(7, seed=1, rank=1, world_size=2)
    stream = _take(full, 20)
    state = full.state_dict(consumed=9)  # 9 keys of rank 1's stream: epoch 2, position 1
    assert (state["epoch"], state["position"]) == (2, 1)
    resumed = ResumableSampler(7, seed=1, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert _take(resumed, 11) == stream[9:]
    with pytest.raises(SegvitError, match="world_size=2, this run has world_size=4"):
        ResumableSampler(7, seed=1, rank=1, world_size=4).load_state_dict(state)


def test_samples_are_augmented_from_seed_epoch_and_index(tiny):
    data = SeededDataset(tiny.TinySet(), tiny.augment, seed=0)
    a, b = data[(0, 3)], data[(0, 3)]
    assert torch.equal(a["image"], b["image"]) and a["label"].dtype == torch.int64
    assert not torch.equal(a["image"], data[(1, 3)]["image"])  # next epoch, new augmentation
    assert not torch.equal(
        a["image"], SeededDataset(tiny.TinySet(), tiny.augment, seed=1)[(0, 3)]["image"]
    )
    plain = SeededDataset(tiny.TinySet(), None, seed=0)[(0, 3)]
    assert torch.equal(plain["image"], torch.from_numpy(tiny.TinySet().images[3]))


def test_bad_samples_are_clear_errors(tiny):
    hwc = SeededDataset(tiny.TinySet(), lambda im, lb, rng: (im[0], lb), seed=0)
    with pytest.raises(SegvitError, match=r"training sample 2: expected a float image \(C, H, W\)"):
        hwc[(0, 2)]
    crop = SeededDataset(tiny.TinySet(), lambda im, lb, rng: (im, lb[:4]), seed=0)
    with pytest.raises(SegvitError, match="differ in size"):
        crop[(0, 2)]
    with pytest.raises(SegvitError, match="training set is empty"):
        ResumableSampler(0, seed=0)


def test_batch_split_and_single_process_helpers(monkeypatch):
    assert split_batch(16, 4, None) == (4, 4, 1)
    assert split_batch(16, 2, 2) == (8, 2, 4)
    with pytest.raises(SegvitError, match="batch 16 does not divide among 3 processes"):
        split_batch(16, 3, None)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.device.type, ctx.is_main) == (0, 1, "cpu", True)
    assert reduce_count(0.0).item() == 1.0 and reduce_count(5).item() == 5.0
    assert torch.equal(all_reduce_mean(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SegvitError, match="WORLD_SIZE='two'"):
        init_distributed("cpu")
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(SegvitError, match="--device tpu: expected auto, cpu or cuda"):
        init_distributed("tpu")


_SCRIPT = """
import json, os, sys
import torch
import torch.nn.functional as F
sys.path.insert(0, {tests!r})
import tiny
from segvit.collective import reduce_count
from segvit.engine.train import train

work, out = sys.argv[1], sys.argv[2]
rank = int(os.environ["RANK"])
counts = []

def loss_fn(output, labels):
    counts.append(reduce_count(rank + 1.0).item())  # mean over ranks of 1 and 2
    logits = F.interpolate(output.mask_logits, size=labels.shape[-2:], mode="bilinear")
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    return {{"loss": ce.sum() / labels.numel() + output.class_logits.pow(2).mean()}}

torch.manual_seed(1)
model = tiny.TinySegmentor()
model.backbone.drop.p = 0.0
data = tiny.TinySet(size=12)
cfg = tiny.make_cfg(variant="tiny", dataset="demo", work_dir=work, iters=3, batch=4, lr=1e-2,
                  warmup_iters=1, log_interval=1, eval_interval=100, checkpoint_interval=100,
                  num_workers=0, device="cpu")
result = train(cfg, model=model, train_set=data, loss_fn=loss_fn, transform=tiny.augment)
torch.save(model.state_dict(), f"{{out}}/rank{{rank}}.pt")
with open(f"{{out}}/rank{{rank}}.json", "w") as file:
    json.dump({{"reads": data.reads, "counts": counts, "loss": result.losses["loss"]}}, file)
"""


def test_two_gloo_processes_agree_and_split_the_data(tiny, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent)))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(var, None)
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path / "work"),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert tiny.state_equal(weights[0], weights[1])
    # 3 steps x 2 images per rank = one epoch of 12: disjoint halves covering every index.
    reads = [set(r["reads"]) for r in ranks]
    assert len(ranks[0]["reads"]) == len(ranks[1]["reads"]) == 6
    assert not reads[0] & reads[1] and reads[0] | reads[1] == set(range(12))
    assert ranks[0]["counts"] == ranks[1]["counts"] == [1.5, 1.5, 1.5]
    assert ranks[0]["loss"] == ranks[1]["loss"]  # logged losses are averaged over ranks
    assert (tmp_path / "work" / "last.pt").is_file()

    # One process accumulating two halves of 2 sees the same 4 images per step: same weights.
    torch.manual_seed(1)
    single = tiny.TinySegmentor()
    single.backbone.drop.p = 0.0

    def loss_fn(output, labels):
        logits = F.interpolate(output.mask_logits, size=labels.shape[-2:], mode="bilinear")
        ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
        return {"loss": ce.sum() / labels.numel() + output.class_logits.pow(2).mean()}

    cfg = tiny.make_cfg(
        variant="tiny",
        dataset="demo",
        work_dir=str(tmp_path / "single"),
        iters=3,
        batch=4,
        device_batch=2,
        lr=1e-2,
        warmup_iters=1,
        eval_interval=100,
        checkpoint_interval=100,
        num_workers=0,
        device="cpu",
    )
    train(
        cfg, model=single, train_set=tiny.TinySet(size=12), loss_fn=loss_fn, transform=tiny.augment
    )
    for name, value in single.state_dict().items():
        torch.testing.assert_close(weights[0][name], value, rtol=1e-5, atol=1e-6, msg=name)


_LOCKED = """
import os
import sys
from pathlib import Path

from segvit.engine.distributed import cleanup, init_distributed
from segvit.engine.train import _work_dir_lock
from segvit.errors import SegvitError


def say(text):  # one write, newline included: two ranks' lines never interleave in the pipe
    os.write(1, (text + "\\n").encode())


ctx = init_distributed("cpu")
try:
    with _work_dir_lock(Path(sys.argv[1]), ctx):
        say(f"rank {ctx.rank}: went on")
except SegvitError as err:
    say(f"rank {ctx.rank}: {err}")
    sys.exit(3)
finally:
    cleanup(ctx)
"""


def test_every_rank_learns_at_once_that_the_work_dir_is_held(tmp_path):
    """Under torchrun only rank 0 takes the lock; a refused job's other ranks must stop with
    the same line, not wait at a barrier until its timeout (30 minutes by default)."""
    from segvit.engine.train import LOCK_NAME
    from segvit.fileio import exclusive_lock

    script, work = tmp_path / "locked.py", tmp_path / "work"
    script.write_text(_LOCKED)
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(work)]  # fmt: skip
    with exclusive_lock(work / LOCK_NAME, "a training into the test's work dir"):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    said = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert done.returncode != 0 and len(said) == 2, done.stdout + done.stderr[-2000:]
    lines = {line.split(": ", 1)[1] for line in said}
    assert len(lines) == 1 and "is already running" in lines.pop()
    freed = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert freed.returncode == 0 and freed.stdout.count("went on") == 2, freed.stderr[-2000:]
