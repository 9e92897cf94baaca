"""`Launch`: torchrun's options for one node and for several, threaded down to the command
`reproduce` runs; and a real 2-process gloo step through those options."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segvit.engine.recipe import get_recipe
from segvit.errors import SegvitError
from segvit.experiments import reproduce as sweep
from segvit.experiments.config import RowConfig
from segvit.experiments.launch import Launch, torchrun_command
from segvit.experiments.sweep import STAGES, Sweep

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
ROW = RowConfig("Shrunk / ATM", "segvit_shrunk_b", "ade20k")


def test_one_node_is_standalone():
    assert Launch(gpus=8).torchrun_args() == ["--standalone", "--nproc_per_node=8"]
    assert not Launch().distributed and Launch(gpus=2).distributed


def test_several_nodes_meet_at_node_0():
    launch = Launch(gpus=4, nnodes=2, node_rank=1, rdzv_endpoint="node001:29500")
    assert launch.world_size == 8
    assert launch.torchrun_args() == [
        "--nnodes=2", "--nproc_per_node=4", "--node_rank=1", "--rdzv_backend=static",
        "--rdzv_endpoint=node001:29500",
    ]  # fmt: skip


def test_node_0_marks_a_run_the_others_wait_for(tmp_path):
    def node(rank):
        return Launch(gpus=8, nnodes=2, node_rank=rank, rdzv_endpoint="n:1", rdzv_id="job7")

    with pytest.raises(SegvitError, match=r"node 1: node 0 did not mark .* trained within 0 s"):
        node(1).settle(tmp_path, timeout_s=0.0, poll_s=0.0)
    node(0).settle(tmp_path)
    assert (tmp_path / ".trained-job7").is_file()
    node(1).settle(tmp_path, timeout_s=0.0)  # the mark is there: returns at once
    Launch(gpus=8).settle(tmp_path / "nowhere")  # one node: nothing to wait for


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": 0}, "--gpus 0: expected at least 1"),
        ({"nnodes": 2, "rdzv_endpoint": "h:1"}, "--nnodes 2: also pass --node-rank and"),
        ({"nnodes": 2, "node_rank": 0}, "--nnodes 2: also pass --node-rank and --rdzv-endpoint"),
        ({"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}, "--node-rank 2: expected 0 to 1"),
        (
            {"nnodes": 2, "node_rank": 0, "rdzv_endpoint": "node001"},
            "--rdzv-endpoint node001: expected HOST:PORT",
        ),
    ],
)
def test_bad_launches_are_one_line(kwargs, message):
    with pytest.raises(SegvitError, match=message):
        Launch(**kwargs)


def test_several_nodes_only_train():
    launch = Launch(gpus=8, nnodes=2, node_rank=0, rdzv_endpoint="node001:29500")
    launch.check_stages(["train"])
    with pytest.raises(SegvitError, match=r"--nnodes 2: run `--only train` on every node"):
        Sweep(get_recipe("paper"), tables=["table8"], launch=launch)
    Launch(gpus=8).check_stages(STAGES)  # one node runs every stage


@pytest.mark.parametrize("nnodes", [1, 2])
def test_train_row_runs_this_exact_command(tmp_path, monkeypatch, nnodes):
    calls = []

    def run(cmd, check):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(sweep.subprocess, "run", run)
    several = {"node_rank": 0, "rdzv_endpoint": "node001:29500"} if nnodes > 1 else {}
    launch = Launch(gpus=4, nnodes=nnodes, rdzv_id="job7", **several)
    run_dir = tmp_path / "table8" / "paper" / "shrunk-atm"
    sweep.train_row(ROW, get_recipe("paper"), run_dir, data_root=Path("/data"), launch=launch)
    work = run_dir / "train"
    nodes = (
        ["--standalone", "--nproc_per_node=4"]
        if nnodes == 1
        else ["--nnodes=2", "--nproc_per_node=4", "--node_rank=0", "--rdzv_backend=static",
              "--rdzv_endpoint=node001:29500"]
    )  # fmt: skip
    assert calls == [
        TORCHRUN + nodes + [
            "-m", "segvit.cli", "train", "segvit_shrunk_b", "--dataset", "ade20k",
            "--preset", "paper", "--crop", "512", "--work-dir", str(work),
            "--data-root", "/data", "--resume",
        ]
    ]  # fmt: skip
    assert (work / ".trained-job7").is_file() == (nnodes > 1)  # node 0 marked the run


def test_a_failed_run_names_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(
        sweep.subprocess, "run", lambda cmd, check: subprocess.CompletedProcess(cmd, 1)
    )
    with pytest.raises(
        SegvitError, match=r"training segvit_shrunk_b failed; see .*train/log.jsonl"
    ):
        sweep.train_row(
            ROW, get_recipe("paper"), tmp_path, data_root=tmp_path, launch=Launch(gpus=2)
        )


@pytest.mark.slow  # two processes importing torch and timm: about a minute on 2 busy cores
def test_two_gloo_processes_through_the_launch_options(tmp_path, load_by_path):
    """torchrun with the options a one-node, 2-GPU `reproduce` passes, on a CPU: both ranks
    join one gloo group and hold the same weights after a DDP step of a tiny SegViT."""
    ddp_step = load_by_path("ddp_step", Path(__file__).parents[1] / "ddp_step.py")
    seen, weights = ddp_step.run_two_ranks(
        "cpu", tmp_path, "segvit_b", 32, tiny=True, env={"OMP_NUM_THREADS": "1"}
    )
    assert [(s["rank"], s["world_size"], s["backend"]) for s in seen] == [
        (0, 2, "gloo"),
        (1, 2, "gloo"),
    ]
    assert seen[0]["loss"] != seen[1]["loss"]  # each rank stepped on its own batch
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_torchrun_command_runs_the_segvit_module():
    command = torchrun_command(Launch(gpus=2), ["train", "setr_b"])
    assert command == TORCHRUN + [
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "segvit.cli",
        "train",
        "setr_b",
    ]
