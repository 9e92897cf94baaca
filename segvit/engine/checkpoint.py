"""Atomic checkpoints: a training state to resume from, and weights-only files to hand out.

A work dir holds `last.state.pt` (everything a resumed run needs: model, optimizer, schedule,
GradScaler, iteration, every RNG state, the data order), `last.pt` and `best.pt` (weights
plus a small metadata dict). Every file is written to a temporary name in the same folder,
fsynced and renamed over the old one, so a run killed at any moment leaves either the previous
file or the new one, never half of one. Every file loads with `torch.load(weights_only=True)`:
the numpy RNG key is stored as a tensor for that reason.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from segvit.errors import SegvitError
from segvit.fileio import TMP_SUFFIX, atomic_write
from segvit.modeling.unpickle import load_torch

Meta = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class CheckpointPaths:
    """Where a work dir keeps its checkpoints."""

    work_dir: Path

    @property
    def state(self) -> Path:  # the training state, for resuming
        return self.work_dir / "last.state.pt"

    @property
    def last(self) -> Path:  # weights of the latest checkpoint
        return self.work_dir / "last.pt"

    @property
    def best(self) -> Path:  # weights with the highest evaluation metric so far
        return self.work_dir / "best.pt"

    @property
    def log(self) -> Path:  # one JSON record per logged step and evaluation
        return self.work_dir / "log.jsonl"

    @property
    def config(self) -> Path:  # the settings of the run
        return self.work_dir / "config.json"

    def results(self) -> list[Path]:
        """What a run left here that a new run would replace: weights, log, and the
        evaluations `segvit eval` wrote beside the weights."""
        kept = [p for p in (self.last, self.best, self.log) if p.is_file()]
        return kept + sorted(self.work_dir.glob("eval_*.json"))

    def clear(self) -> None:
        """Remove the previous run (training state, results, config) for a fresh one."""
        for path in [self.state, self.config, *self.results()]:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- atomic writes


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save(obj, path)`, atomically."""
    atomic_write(path, lambda file: torch.save(obj, file))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries a killed save left behind; returns what was removed."""
    stale = sorted(Path(folder).glob(f".*{TMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _load(path: Path, what: str) -> Any:
    """torch.load with weights_only, every failure turned into a one-line SegvitError."""
    return load_torch(Path(path), f"{what} file")


# ---------------------------------------------------------------------------- weights files


def _plain_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in state_dict.items()}


def save_weights(path: Path, state_dict: Mapping[str, Tensor], meta: Meta) -> None:
    """Weights and metadata (str/int/float/bool values), loadable with weights_only=True."""
    for key, value in meta.items():
        if not isinstance(value, str | int | float | bool):
            raise TypeError(f"weights metadata {key!r} must be str/int/float/bool, not {value!r}")
    atomic_save({"state_dict": _plain_state_dict(state_dict), "meta": dict(meta)}, path)


def weights_meta(
    model: nn.Module,
    *,
    record: Mapping[str, str | int | float | bool],
    iteration: int,
    metric: tuple[str, float | None] = ("mIoU", None),
) -> Meta:
    """A weights file's metadata: what rebuilds the model (a Segmentor's variant,
    num_classes, crop, tiny), apart from it what the run trained on (`record`, e.g. the
    dataset as `trained_on`), the iteration, and the metric of these weights."""
    own = model.meta.to_dict() if hasattr(getattr(model, "meta", None), "to_dict") else {}
    meta: Meta = dict(record) | own | {"iteration": iteration}
    name, value = metric
    if value is not None:
        meta[name] = value
    return meta


def export_safetensors(path: Path, state_dict: Mapping[str, Tensor], meta: Meta) -> None:
    """The same content as `save_weights` as a .safetensors file (meta kept as JSON)."""
    from safetensors.torch import save

    # safetensors refuses tensors that share memory and wants them contiguous.
    tensors = {name: t.contiguous().clone() for name, t in _plain_state_dict(state_dict).items()}
    data = save(tensors, metadata={"segvit": json.dumps(dict(meta))})
    atomic_write(path, lambda file: file.write(data))


def load_weights(path: Path) -> tuple[dict[str, Tensor], Meta]:
    """(state_dict, meta) from a `.pt` written by save_weights or a `.safetensors` export."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    content = _load(path, "weights")
    if not (
        isinstance(content, dict)
        and isinstance(content.get("state_dict"), dict)
        and isinstance(content.get("meta"), dict)
        and all(isinstance(t, Tensor) for t in content["state_dict"].values())
    ):
        raise SegvitError(f"{path}: expected a segvit weights file with 'state_dict' and 'meta'")
    return content["state_dict"], content["meta"]


def _load_safetensors(path: Path) -> tuple[dict[str, Tensor], Meta]:
    from safetensors import safe_open

    if not path.is_file():
        raise SegvitError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as file:
            meta = json.loads((file.metadata() or {}).get("segvit", "{}"))
            state_dict = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    except Exception as err:
        raise SegvitError(f"{path}: not a readable safetensors weights file ({err})") from None
    return state_dict, meta


# ---------------------------------------------------------------------------- training state


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """The training state dict (see train.py for its keys), atomically."""
    atomic_save(dict(state), path)


def load_state(path: Path) -> dict[str, Any]:
    content = _load(path, "training state")
    if not isinstance(content, dict) or "iteration" not in content:
        raise SegvitError(f"{path}: expected a segvit training state with an 'iteration'")
    return content


def check_work_dir(paths: CheckpointPaths, *, resume: bool, overwrite: bool = False) -> None:
    """Refuse a run the work dir cannot take, before any work: a file where the folder goes;
    without `overwrite`, a fresh run where a training state is, or any run where a run's
    results (weights, log) are but no training state (deleted to save disk) to resume from."""
    work = paths.work_dir
    if resume and overwrite:
        raise SegvitError("--resume continues the run, --overwrite replaces it: pick one")
    if work.exists() and not work.is_dir():
        raise SegvitError(f"--work-dir {work}: a file is there; expected a folder")
    if overwrite:
        return
    if not paths.state.is_file():
        results = paths.results()
        if results:
            names = ", ".join(p.name for p in results)
            raise SegvitError(
                f"{work} holds a run ({names}) but no {paths.state.name} to resume from; "
                "pass --overwrite to replace it, or choose another work dir"
            )
    elif not resume:
        raise SegvitError(
            f"{work} already holds a training state ({paths.state.name}); "
            "resume it (--resume), replace it (--overwrite) or choose another work dir"
        )


def resumable_state(
    paths: CheckpointPaths, *, resume: bool, config: Mapping[str, Any], must_match: Iterable[str]
) -> dict[str, Any] | None:
    """The training state a run continues from, or None for a fresh run.

    The work dir must pass `check_work_dir` (a run that overwrites cleared it first). A
    resumed run must agree with the saved one on `must_match` (the settings that shape the
    weights); resuming where nothing was saved yet starts from scratch.
    """
    check_work_dir(paths, resume=resume)
    if not paths.state.is_file():
        return None
    state = load_state(paths.state)
    saved = state.get("config", {})
    for key in must_match:
        if saved.get(key) != config[key]:
            raise SegvitError(
                f"resume {paths.state}: {key} was {saved.get(key)!r}, now {config[key]!r}; "
                "keep it or use a new work dir"
            )
    return state


# ---------------------------------------------------------------------------- RNG states


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """Every global RNG state of this process, in weights_only-loadable types."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),  # uint32 -> int64, exact
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


@contextmanager
def preserved_rng(device: torch.device | None = None) -> Iterator[None]:
    """Whatever runs inside leaves every global RNG as it found it."""
    state = capture_rng(device)
    try:
        yield
    finally:
        restore_rng(state, device)


def restore_rng(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Put back what capture_rng returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
