"""How `segvit reproduce` spreads one training run: processes per node, nodes, rendezvous.

One node: `torchrun --standalone`, which finds a free local port by itself. Several nodes: every
node runs the same `segvit reproduce ... --only train` and its torchrun joins a rendezvous
at `rdzv_endpoint` (host:port of a process every node can reach, usually the first node's).
Without a node rank the c10d backend hands out ranks as nodes arrive, which is what a
scheduler such as SLURM wants (the same command on every node); with `node_rank` the static
backend pins each node to its rank. Evaluation and GFLOPs are single-process stages: on
several nodes they run afterwards on one node (see docs/gpus.md).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segvit.errors import SegvitError

# References: torch.distributed.run (torchrun) options --standalone, --nnodes, --node_rank,
# --rdzv_backend, --rdzv_endpoint, --rdzv_id; PyTorch's "torchrun (Elastic Launch)" docs.


@dataclass(frozen=True)
class Launch:
    """Where the processes of one training run come from."""

    gpus: int = 1  # processes (one per GPU) on each node
    nnodes: int = 1  # nodes taking part in every training run
    node_rank: int | None = None  # this node's rank (static rendezvous); None: c10d assigns
    rdzv_endpoint: str | None = None  # host:port every node reaches; needed for nnodes > 1
    rdzv_id: str = "segvit"  # names the job; each row's run adds its own suffix

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise SegvitError(f"--gpus {self.gpus}: expected at least 1")
        if self.nnodes < 1:
            raise SegvitError(f"--nnodes {self.nnodes}: expected at least 1")
        if self.node_rank is not None and not 0 <= self.node_rank < self.nnodes:
            raise SegvitError(f"--node-rank {self.node_rank}: expected 0 to {self.nnodes - 1}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise SegvitError(f"--nnodes {self.nnodes}: also pass --rdzv-endpoint HOST:PORT")
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

    def torchrun_args(self, run_name: str = "") -> list[str]:
        """torchrun's own options for one run; `run_name` keeps rendezvous of successive
        runs (one per row) apart."""
        if self.nnodes == 1:
            return ["--standalone", f"--nproc_per_node={self.gpus}"]
        args = [f"--nnodes={self.nnodes}", f"--nproc_per_node={self.gpus}"]
        if self.node_rank is None:
            run_id = "-".join(part for part in (self.rdzv_id, run_name) if part)
            args += ["--rdzv_backend=c10d", f"--rdzv_id={run_id}"]
        else:
            args += ["--rdzv_backend=static", f"--node_rank={self.node_rank}"]
        return args + [f"--rdzv_endpoint={self.rdzv_endpoint}"]


def run_name(work_dir: Path) -> str:
    """The same short name for one row's run on every node: its work dir, made id-safe."""
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(work_dir).as_posix()).strip("-")[-80:]


def torchrun_command(launch: Launch, module_args: Sequence[str], work_dir: Path) -> list[str]:
    """`python -m torch.distributed.run OPTIONS -m segvit.cli ARGS` for one training run."""
    return [
        sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(run_name(work_dir)),
        "-m", "segvit.cli", *module_args,
    ]  # fmt: skip
