"""What a run tells: a JSONL record per logged step and evaluation, and a live progress bar.

Only rank 0 writes. The bar (tqdm: iteration, loss, lr, it/s, ETA) shows on a terminal; in
CI or a pipe it gives way to one plain line per logged step, and the JSONL log is always kept.
With `tensorboard` installed, a run can also mirror every record as TensorBoard scalars.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from segvit.engine.checkpoint import atomic_write
from segvit.errors import SegvitError


def json_safe(value: Any) -> Any:
    """JSON-safe: tensors to numbers, NaN/inf to None (json would write non-standard NaN)."""
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1):
        value = value.item()
    elif isinstance(value, torch.Tensor | np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


TENSORBOARD_MISSING = (
    "--tensorboard needs the tensorboard package: pip install 'segvit[tensorboard]'"
)


def tensorboard_available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs tensorboard)
    except ImportError:
        return False
    return True


class RunLog:
    """Appends one JSON object per line to `path` (work_dir/log.jsonl); with `tensorboard`,
    also writes each record's numbers as scalars to work_dir/tensorboard."""

    def __init__(self, path: Path, *, enabled: bool = True, tensorboard: bool = False) -> None:
        self.path, self.enabled = Path(path), enabled
        if enabled and tensorboard and not tensorboard_available():
            raise SegvitError(TENSORBOARD_MISSING)
        self.board = (
            TensorBoardLog(self.path.parent / "tensorboard") if enabled and tensorboard else None
        )

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = json_safe(record)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        if self.board is not None:
            self.board.write(record)

    def truncate_after(self, iteration: int) -> None:
        """Drop records past `iteration`: a resumed run logs those iterations again."""
        if self.board is not None:
            self.board.resume_after = iteration
        if not (self.enabled and self.path.is_file()):
            return
        kept = [  # a last line without its newline was cut by a kill: it goes too
            line
            for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.strip() and line.endswith("\n") and _iteration_of(line) <= iteration
        ]
        atomic_write(self.path, lambda file: file.write("".join(kept).encode("utf-8")))


class TensorBoardLog:
    """A log record's numbers as TensorBoard scalars at its iteration: "train/<key>" for
    training steps (losses, lrs, times, memory), "val/<key>" for evaluations (mIoU, aAcc...)."""

    # References: mmsegmentation 0.x's TensorboardLoggerHook (the same scalars, tagged by
    # mode, at the iterations of its json log).

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        # Events past the iteration a run starts from are dropped, as RunLog.truncate_after
        # drops their records: a resumed run logs them again, a fresh one starts over.
        self.resume_after = 0
        self.writer = None  # opened at the first record, once resume_after is known

    def write(self, record: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.writer is None:
            self.writer = SummaryWriter(str(self.log_dir), purge_step=self.resume_after + 1)
        mode = "val" if record.get("kind") == "eval" else "train"
        for key, value in record.items():
            if key != "iter" and isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(f"{mode}/{key}", value, record["iter"])
        self.writer.flush()  # records come every log_interval steps: cheap, and never lost


def _iteration_of(line: str) -> int:
    try:
        return int(json.loads(line).get("iter", 0))
    except (ValueError, AttributeError):
        return 0  # not a record: kept, and read_log names it


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a log.jsonl (each a JSON object with an "iter" number). The one bad line
    allowed is a last line without its newline, written up to a kill: it is skipped. Any other
    is an error naming the file and the line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                continue  # written up to the kill
            raise SegvitError(f"{path}:{number}: not a JSON record; is it a segvit log?") from None
        if not (isinstance(record, dict) and isinstance(record.get("iter"), int)):
            raise SegvitError(f"{path}:{number}: expected a record with an 'iter' number")
        records.append(record)
    return records


class Window:
    """Per-iteration numbers summed between two log records; `flush` gives their means."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def flush(self) -> dict[str, float]:
        means = {key: value / max(self.count, 1) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def wants_bar() -> bool:
    """A live bar only on a terminal and outside CI."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


class Progress:
    """Live bar (rank 0, terminal) or plain lines (rank 0, elsewhere); silent on other ranks."""

    def __init__(
        self, *, total: int, initial: int, enabled: bool, bar: bool | None = None, label: str = ""
    ) -> None:
        self.enabled, self.label = enabled, label  # label: whose iterations these are
        self.bar = None
        if enabled and (wants_bar() if bar is None else bar):
            self.bar = tqdm(
                total=total, initial=initial, unit="it", dynamic_ncols=True, desc=label or None
            )

    def advance(self, loss: float, lr: float) -> None:
        """One iteration done."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)

    def report(self, record: Mapping[str, Any], *, total: int) -> None:
        """A log record as a line: evaluations always, training steps only without a bar."""
        if record["kind"] == "eval":
            scores = [
                f"{k} {v:.4f}"
                for k, v in record.items()
                if isinstance(v, numbers.Real) and k != "iter"
            ]
            self.line(f"iter {record['iter']}  " + "  ".join(scores))
        elif self.bar is None:
            eta = time.strftime("%H:%M:%S", time.gmtime(record["eta_s"]))
            self.line(
                f"iter {record['iter']}/{total}  loss {record['loss']:.4f}  "
                f"lr {record['lr']:.2e}  {1 / record['time']:.2f} it/s  eta {eta}"
            )

    def line(self, text: str) -> None:
        """A plain line: printed above the bar, or alone when there is no bar."""
        if not self.enabled:
            return
        text = f"{self.label}: {text}" if self.label else text
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
