"""scripts/slurm/reproduce.sbatch on a CPU, with stand-ins for srun, scontrol and segvit:
the commands each node would run, and the real CLI accepting them (as a plan)."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from segvit.cli import main

SCRIPT = Path(__file__).parents[1] / "scripts" / "slurm" / "reproduce.sbatch"
STUBS = {
    "scontrol": 'printf "gpu-a17\\ngpu-a18\\n"',
    # Two nodes: the task command once per node, each with its own SLURM_NODEID.
    "srun": 'for id in 0 1; do SLURM_NODEID=$id "${@: -3}"; done',
    "segvit": 'echo "node=${SLURM_NODEID:-batch} $*" >> "$CALLS"',
}


@pytest.fixture
def calls(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.txt"
    env = os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(log),
        "SEGVIT_BIN": str(bin_dir / "segvit"), "SEGVIT_DATA": "/shared/data",
        "SEGVIT_RUNS": "/shared/runs", "SLURM_JOB_NODELIST": "gpu-a[17-18]",
        "SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "4", "SLURM_JOB_ID": "81234",
    }  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT), "table8"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [line.split(" ", 1) for line in log.read_text().splitlines()]


def test_every_node_trains_then_node_0_evaluates(calls):
    train = ("reproduce table8 --preset paper --only train --gpus 4 --nnodes 2 --node-rank {} "
             "--rdzv-endpoint gpu-a17:29500 --rdzv-id 81234 --data-root /shared/data "
             "--runs /shared/runs")  # fmt: skip
    assert calls == [
        ["node=0", train.format(0)],
        ["node=1", train.format(1)],
        ["node=batch", "reproduce table8 --preset paper --only flops --only eval "
                       "--data-root /shared/data --runs /shared/runs"],
    ]  # fmt: skip


def test_the_cli_accepts_each_command(calls, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "weights"))
    for _, command in calls:
        args = shlex.split(command.replace("/shared", str(tmp_path)))
        with pytest.raises(SystemExit) as done:
            main([*args, "--plan", "--json"])
        assert done.value.code in (0, None), capsys.readouterr().err
    assert '"nnodes": 2' in capsys.readouterr().out
