"""The `segvit` command: every sub-command, wired explicitly to its module.

Each command lives in the module of its concern, parses options and calls one library
function. Command modules import torch, timm and the library only inside the commands, so
`segvit --help` answers at once. This file is the table of contents.
"""

import sys
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from segvit.cli import (
    bench_cmds,
    data_cmds,
    dataset_cmds,
    demo_cmds,
    export_cmds,
    model_cmds,
    reproduce_cmds,
    train_cmds,
    weights_cmds,
)
from segvit.cli.groups import group
from segvit.errors import SegvitError

app = typer.Typer(
    name="segvit",
    help="SegViT (NeurIPS 2022) reproduced: prepare data, train, evaluate, count FLOPs, tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
weights_app = typer.Typer(help="The authors' released checkpoints.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
prepare_app = group("dataset", "Prepare a built-in dataset (NAME), or a folder of your own.")
app.add_typer(prepare_app, name="prepare")
plot_app = group("figure", "Draw a figure of the paper (FIGURE), or training curves.")
app.add_typer(plot_app, name="plot")

# Data (segvit.data)
prepare_app.command("dataset")(data_cmds.prepare)
prepare_app.command("folder")(data_cmds.prepare_folder)
app.command("datasets")(dataset_cmds.datasets)
bench_app.command("data")(data_cmds.bench_data)
bench_app.command("train")(bench_cmds.bench_train)
bench_app.command("predict")(bench_cmds.bench_predict)

# Models and FLOPs (segvit.modeling, segvit.analysis.flops)
app.command("variants")(model_cmds.variants)
app.command("backbones")(model_cmds.backbones)
app.command("flops")(model_cmds.flops)

# The authors' released checkpoints (segvit.modeling.release, segvit.modeling.convert)
weights_app.command("list")(weights_cmds.list_weights)
weights_app.command("fetch")(weights_cmds.fetch_weights)
app.command("convert")(weights_cmds.convert)

# Training, evaluation, predictions (segvit.experiments.spec, segvit.engine)
app.command("train")(train_cmds.train)
app.command("eval")(train_cmds.eval_command)
app.command("predict")(train_cmds.predict)
app.command("export")(export_cmds.export)

# The paper's tables and figure (segvit.experiments)
app.command("reproduce")(reproduce_cmds.reproduce)
app.command("tables")(reproduce_cmds.tables)
plot_app.command("figure")(reproduce_cmds.plot_figure)
plot_app.command("curves")(reproduce_cmds.plot_curves)

# The main job on the embedded default: Table 8 at smoke scale
app.command("demo")(demo_cmds.demo)


def main(argv: list[str] | None = None) -> None:
    """The installed `segvit` command: user errors print as one line and exit 1."""
    # torchvision (imported by timm) warns that torch.jit.script is deprecated; not ours to
    # fix, and it would open every command's output.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    try:
        app(args=argv, prog_name="segvit")
    except SegvitError as err:
        _fail(str(err))
    except OSError as err:  # a full disk, a read-only folder: one line, never a traceback
        _fail(f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err))


def _fail(message: str) -> None:
    # escape: a message is plain text; "segvit[tensorboard]" or a path "[a]" is no markup.
    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    sys.exit(1)
