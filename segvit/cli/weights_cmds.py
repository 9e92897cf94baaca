"""`segvit weights list|fetch` and `segvit convert`: the authors' released checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def list_weights() -> None:
    """The seven released models: paper numbers, GFLOPs, which are cached and where."""
    from huggingface_hub import constants

    from segvit.modeling.release import RELEASES, REPO, cached_path, placed_path, release_dir

    table = Table(title=f"Released SegViT checkpoints (huggingface.co/{REPO})")
    table.add_column("name", no_wrap=True)
    for column in ("model", "dataset", "crop", "paper mIoU ss/ms", "GFLOPs", "size", "cached"):
        table.add_column(column, justify="right" if column in ("crop", "GFLOPs") else "left")
    found = {}
    for release in RELEASES.values():
        path = cached_path(release)
        where = "no"
        if path.is_file():
            found[release.name] = path
            where = "by hand" if path == placed_path(release) else "hub cache"
        table.add_row(
            release.name, release.model, release.dataset, str(release.crop),
            f"{release.paper_ss:.1f} / {release.paper_ms:.1f}", f"{release.gflops:.1f}",
            f"~{release.tensor_mb} MB", where,
        )  # fmt: skip
    console.print(table)
    for name, path in found.items():
        console.print(f"{name}: {path}", highlight=False, soft_wrap=True)
    console.print(
        f"hub cache: {constants.HF_HUB_CACHE} (HF_HOME, HF_HUB_CACHE); downloads from "
        f"{constants.ENDPOINT} (HF_ENDPOINT); placed by hand: {release_dir()}/NAME.pth "
        "(SEGVIT_WEIGHTS), used first.\n"
        f"get one: `segvit weights fetch NAME` (or all), or `hf download {REPO} NAME.pth`.\n"
        "size: the file's float32 tensors. A hub file is checked against the size and SHA-256 "
        "the hub states; a file placed by hand too, by `weights fetch NAME` when the hub "
        "answers.\n"
        "PASCAL-Context: the paper's numbers are mIoU over 59 classes (background excluded).",
        highlight=False,
        soft_wrap=True,
    )


def fetch_weights(
    names: Annotated[list[str], typer.Argument(help="released names (see `weights list`) or all")],
) -> None:
    """Download released checkpoints into the Hugging Face cache, resumed after a dropped
    connection, checked against the size and SHA-256 the hub states. A file placed by hand
    in $SEGVIT_WEIGHTS/release is used instead, checked when the hub answers."""
    from segvit.modeling.release import RELEASES, fetch, get_release

    wanted = list(RELEASES) if "all" in names else [get_release(n).name for n in names]
    for name in wanted:
        got = fetch(name)
        checked = "SHA-256 checked" if got.checked else "not checked against the hub"
        how = f"placed by hand, {checked}" if got.placed else checked
        size = got.path.stat().st_size / 1e6
        console.print(f"{name}: {got.path} ({size:.0f} MB, {how})", highlight=False, soft_wrap=True)


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
