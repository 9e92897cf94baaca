"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every file the toolkit writes for others to read (checkpoints, logs, tables, pictures, dataset
markers, metrics) goes through `atomic_write`: a temporary file beside the target, flushed to
disk, renamed over it, and the rename itself synced.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from segvit.errors import SegvitError

TMP_SUFFIX = ".tmp"  # temporaries are ".NAME.PID.tmp" beside their target


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)` so that readers only ever see a complete file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # The rename itself must reach the disk before the file counts as saved.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_text(path: Path, text: str) -> None:
    """UTF-8 text, atomically."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def write_json(path: Path, content: Any, *, indent: int = 2) -> None:
    """Indented JSON, atomically."""
    write_text(path, json.dumps(content, indent=indent) + "\n")


def read_json(path: Path) -> Any | None:
    """The JSON content of `path`, or None where it is missing or unreadable (a marker that
    is not there, or not ours, reads as absent)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def check_folder(path: Path, option: str) -> Path:
    """`path` as the folder a command will create or fill (`option` names it): a file there or
    in its way fails at once in one line, before any work, not as "File exists" after it."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == path else f" ({candidate} is a file)"
                raise SegvitError(f"{option} {path}: a file is there{where}; expected a folder")
            try:  # a read-only folder or disk: found now, not after the whole evaluation
                tempfile.TemporaryFile(dir=candidate).close()
            except OSError as err:
                where = "" if candidate == path else f" ({candidate})"
                raise SegvitError(
                    f"{option} {path}: cannot write there{where}: {err.strerror or err}"
                ) from None
            break
    return path


@contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold `path` as a lock file while the block runs; a second holder fails at once with one
    line naming the process that has it. The lock dies with its process (flock), so a killed
    run never leaves a stale lock behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SegvitError(
                f"{path}: {what} is already running ({holder}); wait for it or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
