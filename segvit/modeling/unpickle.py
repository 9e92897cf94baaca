"""Reading torch files without running them: one refusal, whichever command reads the file.

Every `.pt`/`.pth` segvit reads (`convert`, `eval`, `predict`, `train --pretrained`, a resumed
training state) goes through `torch.load(weights_only=True)`, which rebuilds tensors and plain
data and refuses any other global a pickle names. When it refuses, the file is a pickle that
asks for a function or a class: that is said in one line naming what it asked for (read from
the file, never run). Any other failure (random bytes, a file cut short, a plain pickle) is
"not a readable ...", with the reason. torch's own message advises `weights_only=False`, the
unsafe way round: none of it is ever shown.
"""

from __future__ import annotations

import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from segvit.errors import SegvitError

# An allowed global is a callable, or (callable, "module.name") as torch's safe_globals takes.
Allowed = Sequence[Any]


def load_torch(path: Path, what: str, *, allowed: Allowed = ()) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU, with `allowed` globals besides
    torch's; any failure is the one-line SegvitError of `unreadable`."""
    path = Path(path)
    if not path.is_file():
        raise SegvitError(f"{path}: no such {what}")
    try:
        with torch.serialization.safe_globals(list(allowed)), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's notes on pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or unsafe pickled objects
        raise unreadable(path, what, err, allowed=allowed) from None


def unreadable(path: Path, what: str, err: BaseException, *, allowed: Allowed = ()) -> SegvitError:
    """The one line for a torch file that did not load: the refusal of a pickle that asks for
    code, naming what it asks for, else "not a readable WHAT (why)"."""
    refused = refused_globals(Path(path), err, allowed=allowed)
    if refused:
        return SegvitError(
            f"{path}: refused to unpickle {', '.join(refused)}: loading it could run code "
            "(segvit loads only tensors and plain data)"
        )
    return SegvitError(f"{path}: not a readable {what} ({_reason(Path(path), err)})")


def refused_globals(path: Path, err: BaseException, *, allowed: Allowed = ()) -> list[str]:
    """The globals beyond torch's and `allowed` that the pickle in `path` names, when `err`
    is torch refusing them; [] when the file failed for another reason."""
    chain = _chain(err)
    if not any(isinstance(e, pickle.UnpicklingError) for e in chain):
        return []
    text = " ".join(str(e) for e in chain)
    names: list[str] = []
    if zipfile.is_zipfile(path):  # the zip format: list them from the pickle's opcodes
        try:
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # a damaged archive: torch's message is all there is
            names = []
    if not names:  # the legacy format: torch's message names the first one
        found = re.findall(r"GLOBAL (\S+)|but got <class '([^']+)'>", text)
        names = [a or b for a, b in found]
    known = {_name(item) for item in allowed}
    return [name for name in dict.fromkeys(names) if name not in known]


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and what it was raised from (timm wraps torch's error in its own)."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def _name(item: Any) -> str:
    if isinstance(item, tuple):
        return str(item[1])
    return f"{item.__module__}.{item.__qualname__}"


def _reason(path: Path, err: BaseException) -> str:
    """Why a file that asks for no code did not load, in a few words."""
    try:
        with open(path, "rb") as file:
            head = file.read(2)
    except OSError as error:
        return error.strerror or type(error).__name__
    if not head:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        if head == b"PK":
            return "a zip archive cut short or damaged"
        if head[:1] != b"\x80":  # a pickle opens with PROTO
            return "not a torch file: neither a zip archive nor a pickle"
    err = _chain(err)[-1]  # torch's own error, not a wrapper's
    text = str(err).split("WeightsUnpickler error:")[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not re.search(r"weights[ _]only", line, re.IGNORECASE)]
    if isinstance(err, EOFError | struct.error):
        return "the file is cut short"
    opcode = re.search(r"Unsupported operand (\d+)", text)
    if opcode:
        return f"a pickle torch did not write (pickle opcode {opcode.group(1)})"
    return lines[0] if lines else type(err).__name__
