"""`segvit export`: a trained model as an ONNX graph or as a model folder for the hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from segvit.errors import SegvitError

console = Console()

FORMATS = ("onnx", "folder")


def export(
    checkpoint: Annotated[
        str,
        typer.Argument(
            help="a weights file, a run folder, release:NAME, a model folder or hf:OWNER/NAME"
        ),
    ],
    format: Annotated[str, typer.Option("--format", help="onnx or folder")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="the .onnx file or the folder to write")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="classes and test settings; default: as trained")
    ] = None,
) -> None:
    """Export a model: the crop forward as ONNX (metadata: classes, palette, normalisation,
    crop, test settings), or a folder of model.safetensors, config.json and a model card."""
    if format not in FORMATS:
        raise SegvitError(f"--format {format}: expected one of {', '.join(FORMATS)}")
    if out is None:
        raise SegvitError(f"--out: name the {'.onnx file' if format == 'onnx' else 'folder'}")
    if format == "onnx" and out.suffix != ".onnx":
        raise SegvitError(f"--out {out}: expected a .onnx file name")
    if format == "onnx" and out.is_dir():
        raise SegvitError(f"--out {out}: a folder is there; expected a .onnx file")
    if format == "folder" and out.exists() and not out.is_dir():
        raise SegvitError(f"--out {out}: a file is there; expected a folder")
    from segvit.api import load
    from segvit.fileio import check_folder

    check_folder(out.parent if format == "onnx" else out, "--out")
    model = load(checkpoint, dataset=dataset, device="cpu")
    if model.backend != "torch":
        raise SegvitError(f"{checkpoint}: already an ONNX model; export a PyTorch checkpoint")
    with Console(stderr=True).status(f"exporting {model.network.meta.variant} to {out}"):
        if format == "onnx":
            from segvit.export.onnx import export_onnx

            written = [export_onnx(model.network, model.record, model.dataset, out)]
        else:
            from segvit.export.folder import export_folder

            evaluations = _evaluations(checkpoint)
            folder = export_folder(
                model.network, model.record, model.dataset, out, evaluations=evaluations
            )
            written = sorted(p for p in folder.iterdir() if p.is_file())
    for path in written:
        console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)", highlight=False)


def _evaluations(checkpoint: str) -> dict[str, dict]:
    """`segvit eval`'s scores files beside a checkpoint (for the model card), by name."""
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    if checkpoint.startswith(("release:", "hf:")) or not folder.is_dir():
        return {}
    found = {}
    for file in sorted(folder.glob("eval_*.json")):
        try:
            found[file.stem] = json.loads(file.read_text())
        except (OSError, ValueError):
            continue  # a scores file it cannot read is left out of the card, not fatal
    return found
