"""Training curves from runs' log.jsonl: each loss term, the learning rates and the validation
mIoU against iteration, several runs overlaid, into one PNG.

A run folder is a `segvit train` work dir (log.jsonl, config.json) or a `segvit reproduce` row
folder holding one in train/. Each run gets one colour in every panel. A log's last line may be
cut short by a kill and is skipped; any other unreadable line is an error naming file and line.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

from segvit.engine.checkpoint import CheckpointPaths
from segvit.engine.logging import read_log
from segvit.errors import SegvitError
from segvit.fileio import atomic_write

# References: mmsegmentation's analyze_logs.py (loss and mIoU against iteration from a
# json log), drawn here in the style of segvit.experiments.plot's Figure 4.

METRIC = "mIoU"  # the validation score drawn; the one best.pt is picked by
LR_STYLES = {"lr": "-", "lr_head": "--"}  # engine.optim.current_lrs: backbone and head


@dataclass(frozen=True)
class RunCurves:
    """One run's log records, split by kind, and how the figure names it."""

    label: str  # legend entry: the folder name, with variant and recipe from config.json
    train: list[dict[str, Any]]  # {"kind": "train", "iter", "loss", "loss_*", "lr", ...}
    evals: list[dict[str, Any]]  # {"kind": "eval", "iter", "mIoU", ...}

    def series(self, key: str, *, evals: bool = False) -> tuple[list[int], list[float]]:
        """(iterations, values) of `key`, leaving out records without a finite number."""
        points = [
            (int(r["iter"]), float(r[key]))
            for r in (self.evals if evals else self.train)
            if _finite(r.get(key))
        ]
        return [i for i, _ in points], [v for _, v in points]


def find_log(run_dir: Path) -> Path:
    """RUN_DIR/log.jsonl, or RUN_DIR/train/log.jsonl for a reproduce row folder."""
    for work_dir in (run_dir, run_dir / "train"):  # a row folder trains in train/
        log = CheckpointPaths(work_dir).log
        if log.is_file():
            return log
    raise SegvitError(
        f"{run_dir}: no log.jsonl; expected a `segvit train` work dir or a row folder with "
        "train/log.jsonl"
    )


def read_records(log: Path) -> list[dict[str, Any]]:
    """The records of a log.jsonl (`read_log`'s rule for a bad line), at least one."""
    records = read_log(log)
    if not records:
        raise SegvitError(f"{log} has no records; nothing to plot")
    return records


def load_run(run_dir: Path) -> RunCurves:
    log = find_log(Path(run_dir))
    records = read_records(log)
    return RunCurves(
        label=_label(Path(run_dir), CheckpointPaths(log.parent).config),
        train=[r for r in records if r.get("kind") == "train"],
        evals=[r for r in records if r.get("kind") == "eval"],
    )


def _label(run_dir: Path, config: Path) -> str:
    name = run_dir.resolve().name
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return name  # no config.json: the folder name says enough
    if not isinstance(settings, dict):
        return name
    what = [str(settings[key]) for key in ("variant", "recipe") if key in settings]
    return f"{name} ({', '.join(what)})" if what else name


def curves_figure(runs: Sequence[RunCurves]) -> Figure:
    """One panel per loss term, one for the learning rates, one for validation mIoU."""
    losses = _keys(runs, lambda key: key.startswith("loss"))
    if not losses:
        names = ", ".join(r.label for r in runs)
        raise SegvitError(f"no training record with a loss in {names}; nothing to plot")
    losses.sort(key=lambda key: (key != "loss", key))  # the total first
    lrs = _keys(runs, lambda key: key.startswith("lr"))
    panels = [(key, key) for key in losses]
    panels += [("lr", "learning rate")] if lrs else []
    panels += [(METRIC, f"validation {METRIC} (%)")] if any(r.evals for r in runs) else []
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.0 * columns, 3.0 * rows + 0.5), dpi=150, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colours = [f"C{i % 10}" for i in range(len(runs))]  # one colour per run in every panel
    styles = {key: LR_STYLES.get(key, ":") for key in lrs}  # backbone solid, head dashed
    last = max(int(r["iter"]) for run in runs for r in run.train + run.evals)
    for ax, (key, title) in zip(axes, panels, strict=False):
        for run, colour in zip(runs, colours, strict=True):
            if key == "lr":
                for lr_key, style in styles.items():
                    _line(ax, run.series(lr_key), color=colour, ls=style)
            elif key == METRIC:
                _line(ax, run.series(METRIC, evals=True), color=colour, marker="o")
            else:
                _line(ax, run.series(key), color=colour)
        # Every panel spans the whole run: one evaluation at the end is a dot at the right
        # of the iterations axis, not alone on an axis of its own (142 to 158).
        ax.set_xlim(0, max(last, 1) * 1.04)
        if key == METRIC:
            ax.set_ylim(bottom=0)
        if key == "lr" and len(lrs) > 1:
            for lr_key, style in styles.items():
                ax.plot([], [], color="black", ls=style, lw=1.0, label=lr_key)
            ax.legend(fontsize=7, loc="upper right")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = [axes[0].plot([], [], color=colour, lw=2)[0] for colour in colours]
    labels = [r.label for r in runs]
    fig.legend(handles, labels, fontsize=8, loc="outside upper center", ncols=2, frameon=False)
    return fig


def _line(ax, series: tuple[list[int], list[float]], *, marker: str | None = None, **style):
    """One run's series; with few points (a short smoke run), each point is marked."""
    xs, ys = series
    few = len(xs) <= 12
    ax.plot(xs, ys, lw=1.0, marker=marker or ("o" if few else None), ms=3, **style)


def plot_curves(runs: Sequence[RunCurves], out: Path) -> Path:
    """`curves_figure` of `runs` at `out`, in the format its suffix names."""
    kind = picture_format(out)
    fig = curves_figure(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda file: fig.savefig(file, format=kind))
    return out


FORMATS = ("png", "jpg", "jpeg", "pdf", "svg")  # what matplotlib writes without extras


def picture_format(out: Path) -> str:
    """The format `out`'s suffix names (the bytes written match the name), or one line."""
    kind = Path(out).suffix.lower().removeprefix(".")
    if kind not in FORMATS:
        raise SegvitError(f"--out {out}: expected a .png, .jpg, .pdf or .svg file name")
    return kind


def draw_curves(run_dirs: Sequence[Path], out: Path) -> Path:
    """Read every run's log.jsonl (all before drawing: a bad one writes nothing) and plot."""
    if not run_dirs:
        raise SegvitError("plot curves: name at least one RUN_DIR")
    picture_format(Path(out))  # before reading every log
    return plot_curves([load_run(Path(d)) for d in run_dirs], Path(out))


def _keys(runs: Sequence[RunCurves], wanted) -> list[str]:
    """Numeric record keys `wanted` accepts, over every run, in first-seen order."""
    keys: dict[str, None] = {}
    for run in runs:
        for record in run.train:
            for key, value in record.items():
                if wanted(key) and _finite(value):
                    keys.setdefault(key)
    return list(keys)


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
