"""How `segvit reproduce` spreads one training run: processes per node, nodes, rendezvous.

One node: `torchrun --standalone`, which finds a free local port by itself. Several nodes: each
node runs the same `segvit reproduce ... --only train --node-rank R`; for every row its
torchrun meets the others at `rdzv_endpoint` (host:port on node 0) with the static backend,
so node 0 holds global rank 0, the process that saves the checkpoints. The other ranks do
not wait for those saves, so after each run node 0 leaves a mark in the run's folder and the
other nodes wait for it before they read the weights (the folder must be on a filesystem
every node sees). GFLOPs and evaluation are single-process stages: on several nodes they run
afterwards, on one node (docs/gpus.md).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segvit.errors import SegvitError

# References: torch.distributed.run (torchrun) options --standalone, --nnodes, --node_rank,
# --rdzv_backend=static, --rdzv_endpoint; PyTorch's "torchrun (Elastic Launch)" docs.


@dataclass(frozen=True)
class Launch:
    """Where the processes of one training run come from."""

    gpus: int = 1  # processes (one per GPU) on each node
    nnodes: int = 1  # nodes taking part in every training run
    node_rank: int | None = None  # this node's rank, 0 to nnodes - 1; needed for nnodes > 1
    rdzv_endpoint: str | None = None  # host:port on node 0 every node reaches (nnodes > 1)
    rdzv_id: str = "segvit"  # one id per job (e.g. SLURM's job id): names node 0's marks

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise SegvitError(f"--gpus {self.gpus}: expected at least 1")
        if self.nnodes < 1:
            raise SegvitError(f"--nnodes {self.nnodes}: expected at least 1")
        if self.node_rank is not None and not 0 <= self.node_rank < self.nnodes:
            raise SegvitError(f"--node-rank {self.node_rank}: expected 0 to {self.nnodes - 1}")
        if self.nnodes > 1 and (self.node_rank is None or not self.rdzv_endpoint):
            raise SegvitError(
                f"--nnodes {self.nnodes}: also pass --node-rank and --rdzv-endpoint HOST:PORT"
            )
        if self.rdzv_endpoint and not re.fullmatch(r"[\w.\-\[\]:]+:\d+", self.rdzv_endpoint):
            raise SegvitError(f"--rdzv-endpoint {self.rdzv_endpoint}: expected HOST:PORT")

    @property
    def world_size(self) -> int:
        return self.gpus * self.nnodes

    @property
    def distributed(self) -> bool:
        """More than one process: training goes through torchrun."""
        return self.world_size > 1

    def check_stages(self, stages: Sequence[str]) -> None:
        """Several nodes run training only: evaluation and counting are one process's work,
        and a node evaluating while the others wait at the next rendezvous would time out."""
        if self.nnodes > 1 and set(stages) != {"train"}:
            raise SegvitError(
                f"--nnodes {self.nnodes}: run `--only train` on every node, then "
                "`--only flops --only eval` on one node (docs/gpus.md)"
            )

    def torchrun_args(self) -> list[str]:
        """torchrun's own options for one run."""
        if self.nnodes == 1:
            return ["--standalone", f"--nproc_per_node={self.gpus}"]
        return [
            f"--nnodes={self.nnodes}", f"--nproc_per_node={self.gpus}",
            f"--node_rank={self.node_rank}", "--rdzv_backend=static",
            f"--rdzv_endpoint={self.rdzv_endpoint}",
        ]  # fmt: skip

    def settle(self, work_dir: Path, *, timeout_s: float = 1800.0, poll_s: float = 5.0) -> None:
        """After a run's torchrun returned: node 0 marks the run complete (its rank 0 has
        exited, so its saves are on disk); any other node waits for that mark."""
        if self.nnodes == 1:
            return
        mark = Path(work_dir) / f".trained-{self.rdzv_id}"
        if self.node_rank == 0:
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
            return
        deadline = time.monotonic() + timeout_s
        while not mark.exists():
            if time.monotonic() > deadline:
                raise SegvitError(
                    f"node {self.node_rank}: node 0 did not mark {work_dir} trained within "
                    f"{timeout_s:.0f} s; is {work_dir} on a filesystem both nodes see?"
                )
            time.sleep(poll_s)


def torchrun_command(launch: Launch, module_args: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run OPTIONS -m segvit.cli ARGS` for one training run."""
    return [
        sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(),
        "-m", "segvit.cli", *module_args,
    ]  # fmt: skip
