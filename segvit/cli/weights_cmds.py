"""`segvit weights list|fetch` and `segvit convert`: the authors' released checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def list_weights(
    cache: Annotated[
        Path | None, typer.Option(help="cache folder; default: $SEGVIT_WEIGHTS/release")
    ] = None,
) -> None:
    """The seven released models: paper numbers, GFLOPs, whether cached, where to get each."""
    from segvit.modeling.release import RELEASES, cached_path, release_dir

    folder = cache or release_dir()
    table = Table(title="Released SegViT checkpoints (huggingface.co/Akide/SegViTv1)")
    table.add_column("name", no_wrap=True)
    for column in ("model", "dataset", "crop", "paper mIoU ss/ms", "GFLOPs", "size", "cached"):
        table.add_column(column, justify="right" if column in ("crop", "GFLOPs") else "left")
    for release in RELEASES.values():
        table.add_row(
            release.name, release.model, release.dataset, str(release.crop),
            f"{release.paper_ss:.1f} / {release.paper_ms:.1f}", f"{release.gflops:.1f}",
            f"~{release.tensor_mb} MB", "yes" if cached_path(release, folder).is_file() else "no",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"cache: {folder}\nget one: `segvit weights fetch NAME` (or all), or download "
        "https://huggingface.co/Akide/SegViTv1/resolve/main/NAME.pth into the cache.\n"
        "size: the file's float32 tensors; exact file sizes and SHA-256 digests are not "
        "recorded here, so a download is checked for completeness only.\n"
        "PASCAL-Context: the paper's numbers are mIoU over 59 classes (background excluded).",
        highlight=False,
    )


def fetch_weights(
    names: Annotated[list[str], typer.Argument(help="released names (see `weights list`) or all")],
    cache: Annotated[
        Path | None, typer.Option(help="cache folder; default: $SEGVIT_WEIGHTS/release")
    ] = None,
) -> None:
    """Download released checkpoints into the cache: resumable, checked where a size or
    digest is known."""
    from segvit.modeling.release import RELEASES, fetch, get_release

    wanted = list(RELEASES) if "all" in names else [get_release(n).name for n in names]
    for name in wanted:
        path = fetch(name, cache)
        console.print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB)", highlight=False)


def convert(
    checkpoint: Annotated[str, typer.Argument(help="a release .pth file, or release:NAME")],
    out: Annotated[
        Path | None,
        typer.Option(help=".safetensors or .pt; default: NAME.safetensors in the current folder"),
    ] = None,
) -> None:
    """Convert a released mmseg checkpoint into a segvit weights file (no mmcv needed)."""
    from segvit.engine.checkpoint import export_safetensors, save_weights
    from segvit.errors import SegvitError
    from segvit.modeling.convert import convert_release

    state, meta = convert_release(checkpoint)
    target = out or Path(f"{Path(meta['source']).stem}.safetensors")
    if target.suffix == ".safetensors":
        export_safetensors(target, state, meta)
    elif target.suffix in (".pt", ".pth"):
        save_weights(target, state, meta)
    else:
        raise SegvitError(f"--out {target}: expected a .safetensors, .pt or .pth file name")
    dataset = meta.get("trained_on", "unknown (pass --dataset to eval)")
    console.print(
        f"{meta['source']}: {meta['variant']}, {meta['num_classes']} classes -> dataset "
        f"{dataset}, crop {meta['crop']}; {len(state)} tensors -> {target}",
        highlight=False,
    )
