"""`segvit reproduce ... --plan`: the sweep's plan as terminal tables, or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table


def show_plan(
    sweep, *, bench_files: Sequence[Path] | None, as_json: bool, console: Console
) -> None:
    """Plan `segvit reproduce` with these options and print it; nothing runs."""
    from segvit.experiments.plan import make_plan

    plan = make_plan(sweep, bench_files=bench_files)
    if as_json:
        print(json.dumps(plan.to_dict(), indent=1))
        return
    if not console.is_terminal:  # a log or a pipe: rich's 80 columns would wrap every cell
        console = Console(width=200)
    sources: list[str] = []  # footnotes: each step-time figure once
    for name in plan.tables:
        console.print(_table(name, [r for r in plan.rows if r.table == name], sources))
    for number, source in enumerate(sources, 1):
        console.print(f"[{number}] {source}", highlight=False, soft_wrap=True)
    _totals(plan, console)


def _table(name: str, rows, sources: list[str]) -> Table:
    todo = sum(r.status == "to run" for r in rows)
    table = Table(title=f"{name}: {todo} of {len(rows)} rows to run", title_justify="left")
    for column in ("row", "variant", "would run", "skipped", "iters", "GPU-h", "step time"):
        justify = "right" if column in ("iters", "GPU-h") else "left"
        table.add_column(column, justify=justify)
    for row in rows:
        step = ""
        if row.step is not None:
            if row.step.source not in sources:
                sources.append(row.step.source)
            kind = "measured" if row.step.measured else "assumed"
            step = f"{kind} [{sources.index(row.step.source) + 1}]"
        elif "train" in row.run:
            step = "no measurement"
        iters = "" if row.iters is None else f"{row.iters:,}"
        if row.resumes_at:
            iters += f" (from {row.resumes_at:,})"
        hours = "" if row.gpu_hours is None else f"{row.gpu_hours:.1f}"
        runs = ", ".join(row.run) if row.run else row.status
        table.add_row(row.row, row.variant or "-", runs, "; ".join(row.skipped), iters, hours,
                      step)  # fmt: skip
    return table


def _totals(plan, console: Console) -> None:
    launch = plan.launch
    gpus = f"{launch.world_size} GPU{'s' if launch.world_size > 1 else ''}"
    if launch.nnodes > 1:
        gpus += f" ({launch.nnodes} nodes x {launch.gpus})"
    unknown = plan.unestimated
    console.print(
        f"\n[bold]training[/]: {plan.gpu_hours:.1f} GPU-hours estimated, about "
        f"{plan.wall_hours:.1f} hours on {gpus} if it scales perfectly; evaluation and data "
        "loading are not included"
        + (f"; {len(unknown)} rows to train have no estimate" if unknown else ""),
        highlight=False,
        soft_wrap=True,
    )
    disk = Table(title="disk", title_justify="left")
    for column in ("what", "GB", "source"):
        disk.add_column(column, justify="right" if column == "GB" else "left")
    for item in plan.disk:
        disk.add_row(item.what, f"{item.gb:.2f}", item.source)
    disk.add_row("[bold]total[/]", f"{plan.disk_gb:.1f}", "")
    console.print(disk)
    if not plan.missing:
        console.print("nothing missing", highlight=False)
        return
    console.print("[bold]missing[/], each with the command that fixes it:")
    for item in plan.missing:  # plain lines: the commands stay whole for copying
        console.print(f"- {item.kind} {item.name}: {item.problem}", highlight=False,
                      soft_wrap=True)  # fmt: skip
        console.print(f"    {item.fix}", highlight=False, soft_wrap=True, markup=False)
