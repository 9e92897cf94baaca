"""`segvit demo`: the main job on the embedded default."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from segvit.analysis.flops import count_flops
from segvit.modeling.variants import ModelConfig, build_model

console = Console()

# Table 8 of the paper: the four ViT-B structures and their GFLOPs at 512 on ADE20K.
TABLE8 = (("setr_b", 107.3), ("atm_single_b", 115.8), ("naive_shrunk_b", 74.1),
          ("segvit_shrunk_b", 97.1))  # fmt: skip


def demo() -> None:
    """Table 8 on the CPU: what can run today (paper-scale GFLOPs of its four structures)."""
    table = Table(title="Table 8 structures, ADE20K, 512x512 (GFLOPs)")
    for column in ("variant", "paper", "measured"):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for variant, paper in TABLE8:
        report = count_flops(build_model(ModelConfig(variant, "ade20k")))
        table.add_row(variant, f"{paper:.1f}", f"{report.gflops:.2f}")
    console.print(table)
    console.print(
        "Training and evaluating these rows on the demo data is not available yet "
        "(it needs the data, training and evaluation modules); only GFLOPs were measured."
    )
