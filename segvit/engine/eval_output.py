"""Where `segvit eval` writes its scores: a file named by what changes the scores, beside the
checkpoint by default, never replacing another evaluation's."""

from __future__ import annotations

import json
from pathlib import Path

from segvit.engine.evaluate import EvalSettings
from segvit.errors import SegvitError
from segvit.fileio import check_folder
from segvit.modeling.release import HF_PREFIX, PREFIX, is_release_name


def eval_output(
    out: Path | None, checkpoint: str, dataset: str, settings: EvalSettings, *, data_root: str
) -> Path:
    """The scores file of evaluating `checkpoint` on `dataset` with `settings` (`--out`, else
    beside the checkpoint), checked before any work."""
    name = results_name(checkpoint, dataset, settings)
    return results_file(out, checkpoint, name, data_root=data_root)


def results_name(checkpoint: str, dataset: str, settings: EvalSettings) -> str:
    """A scores file named by what changes the scores, so that one evaluation beside a
    checkpoint never replaces another: eval_best_ade20k_ss, eval_last_demo_ms_whole_first2;
    a release (its own folder) leaves out the file's name: eval_ade20k_ss."""
    hub = is_release_name(checkpoint) or checkpoint.startswith(HF_PREFIX)
    weights = "" if hub else f"{Path(checkpoint).stem}_"
    name = f"eval_{weights}{dataset}_{'ms' if settings.multi_scale else 'ss'}"
    name += "_whole" if settings.mode == "whole" else ""
    name += f"_stride{settings.stride}" if settings.stride is not None else ""
    return name + (f"_first{settings.max_images}" if settings.max_images is not None else "")


def results_file(out: Path | None, checkpoint: str, name: str, *, data_root: str) -> Path:
    """Where `segvit eval` writes, checked before any work: `--out FILE.json` as named, else
    NAME.json in `--out` or beside the checkpoint. The default file is replaced only by the
    same evaluation of the same data root; `--out` names a file the user gives away."""
    if out is not None and out.is_file() and out.suffix.lower() != ".json":
        raise SegvitError(f"--out {out}: a file is there; expected a .json file or a folder")
    if out is not None and out.suffix.lower() == ".json":
        check_folder(out.parent, "--out")
        if out.is_dir():
            raise SegvitError(f"--out {out}: a folder is there; expected a .json file")
        return out
    path = check_folder(out or beside(checkpoint), "--out") / f"{name}.json"
    if out is None and path.is_file():
        try:
            before = json.loads(path.read_text()).get("data_root")
        except (ValueError, AttributeError):
            before = None
        if before != data_root:
            raise SegvitError(
                f"{path} holds scores of {before or 'an unrecorded data root'}, not {data_root}; "
                "pass --out to write elsewhere, or delete it"
            )
    return path


def beside(checkpoint: str) -> Path:
    """Where a checkpoint's results go by default: beside it; release:NAME has no folder of
    its own, so runs/release/NAME."""
    if is_release_name(checkpoint):
        return Path("runs") / "release" / checkpoint.removeprefix(PREFIX)
    if checkpoint.startswith(HF_PREFIX):  # a hub model: its cache folder is not ours to write
        return Path("runs") / "hf" / checkpoint.removeprefix(HF_PREFIX).replace("/", "--")
    return Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
