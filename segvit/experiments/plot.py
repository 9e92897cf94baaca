"""Figure 4: accuracy vs GFLOPs, the paper's points beside the measured ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

from segvit.errors import SegvitError
from segvit.experiments.config import FigureConfig
from segvit.fileio import atomic_write

SEGVIT, OTHERS = "tab:red", "tab:gray"  # paper points: the paper's models, the methods beside


def plot_figure(figure: FigureConfig, frame: pd.DataFrame, out: Path) -> Path:
    """Draw `figure.y` against `figure.x` for every row with numbers, labelled by row name.

    Paper points are filled circles; measured points are hollow squares joined to their
    paper point, so a reader sees at once how far a reproduction lands.
    """
    x, y = figure.x, figure.y
    for column in (f"paper_{x}", f"paper_{y}", x, y):
        if column not in frame.columns:
            raise SegvitError(f"{figure.source} results have no column {column!r}")
    fig = Figure(figsize=(7.5, 5.0), dpi=150)
    ax = fig.subplots()
    drawn = 0
    for _, row in frame.iterrows():
        px, py = _number(row[f"paper_{x}"]), _number(row[f"paper_{y}"])
        mx, my = _number(row[x]), _number(row[y])
        if px is not None and py is not None:
            ours = is_segvit(row["variant"])
            ax.scatter(px, py, s=40, color=SEGVIT if ours else OTHERS, zorder=3)
            ax.annotate(row["row"], (px, py), fontsize=7, xytext=(4, 3), textcoords="offset points")
            drawn += 1
        if mx is not None and my is not None:
            ax.scatter(mx, my, s=46, marker="s", facecolors="none", edgecolors="tab:blue", zorder=4)
            if px is not None and py is not None:
                ax.plot([px, mx], [py, my], color="tab:blue", lw=0.8, ls=":")
            drawn += 1
    if not drawn:
        raise SegvitError(f"{figure.source}: no row has both {x} and {y}; nothing to plot")
    ax.scatter([], [], color=SEGVIT, label="SegViT (paper)")
    ax.scatter([], [], color=OTHERS, label="other methods (paper)")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="tab:blue", label="measured")
    ax.set_xlabel("GFLOPs" if x == "gflops" else x)
    ax.set_ylabel("mIoU (%)" if y.startswith("miou") else y)
    ax.set_title(figure.caption, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda file: fig.savefig(file, format="png"))
    return out


def is_segvit(variant: object) -> bool:
    """A SegViT row: the paper's own models are the variants named segvit_* (segvit_b,
    segvit_shrunk_l, segvit_swin_t...). The comparison rows (DPT, SETR-MLA, Segmenter...)
    have variants too, built by segvit.modeling.peers; a blank (NaN from CSV) is not built."""
    return isinstance(variant, str) and variant.startswith("segvit")


def _number(value) -> float | None:
    """A plottable number, or None for blanks and bounds such as ">250".

    A CSV column that mixes numbers and bounds reads back as strings, so "120.9" counts.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number
