"""Reading the official archives safely, the annotation containers inside them, and
installing a prepared tree atomically.

`segvit prepare` never trusts an archive: member names that would land outside the target
folder, links and devices are refused; a truncated archive is one error naming it. The
official annotations come as MATLAB 5 files (COCO-Stuff-10K, PASCAL-Context), read with
scipy.io, and COCO run-length masks (the Detail JSON of PASCAL-Context), a small format
decoded here so that preparing does not need pycocotools. A tree is built in a scratch
folder inside the data root and renamed into place, so an interrupted run leaves nothing
that looks done.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from segvit.errors import SegvitError
from segvit.fileio import exclusive_lock, read_json, write_json

# References: the COCO API's compressed run-length encoding (rleFrString / rleDecode) as
# documented with pycocotools; the decoder is tested against pycocotools.mask.encode.

MARKER = ".segvit_prepared.json"  # written last: the tree is complete and verified
PARTIAL = ".segvit_partial"  # present while new folders are merged into an existing tree
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)


@dataclass(frozen=True)
class Member:
    """One regular file of a source: its checked relative name and how to read it."""

    name: str  # posix path relative to the source, never absolute, never with ".."
    open: Callable[[], BinaryIO]
    path: Path | None = None  # set for folder sources: hard-link or copy instead of streaming


def safe_name(name: str, archive: Path) -> str:
    """`name` as a relative posix path, or a one-line refusal if it would leave the target."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise SegvitError(
            f"refusing {archive}: member {name!r} would be written outside the target folder"
        )
    return "/".join(part for part in pure.parts if part != ".")


class Source:
    """An official archive (.zip, .tar, .tar.gz) or an already extracted folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self.kind = "dir"
        elif zipfile.is_zipfile(path):
            self.kind = "zip"
        elif path.is_file() and _is_tar(path):
            self.kind = "tar"
        elif path.is_file():
            raise SegvitError(
                f"{path} is not a valid .zip or .tar archive (truncated or wrong download?)"
            )
        else:
            raise SegvitError(f"{path} does not exist")

    def members(self) -> Iterator[Member]:
        """Every regular file, in archive order; one pass (tar.gz cannot seek backwards)."""
        try:
            yield from getattr(self, f"_{self.kind}_members")()
        except _CORRUPT as err:
            raise SegvitError(
                f"{self.path} is truncated or corrupt ({err}); get it again"
            ) from None

    def _dir_members(self) -> Iterator[Member]:
        for folder, dirs, files in os.walk(self.path):
            dirs.sort()
            for file in sorted(files):
                path = Path(folder, file)
                name = path.relative_to(self.path).as_posix()
                yield Member(name, functools.partial(open, path, "rb"), path)

    def _zip_members(self) -> Iterator[Member]:
        with zipfile.ZipFile(self.path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = safe_name(info.filename, self.path)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise SegvitError(f"refusing {self.path}: member {name!r} is a link")
                yield Member(name, lambda i=info: archive.open(i))

    def _tar_members(self) -> Iterator[Member]:
        with tarfile.open(self.path, "r:*") as archive:
            for info in archive:
                if info.isdir():
                    continue
                name = safe_name(info.name, self.path)
                if not info.isfile():
                    raise SegvitError(
                        f"refusing {self.path}: member {name!r} is a link or device; "
                        "the official archives hold only files and folders"
                    )
                yield Member(name, lambda i=info: archive.extractfile(i))


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def read_member(member: Member, archive: Path) -> bytes:
    """All bytes of `member`, or one error naming `archive` if it is cut short or corrupt."""
    try:
        with member.open() as handle:
            return handle.read()
    except _CORRUPT as err:
        raise SegvitError(f"{archive} is truncated or corrupt ({err}); get it again") from None


def write_member(member: Member, dest: Path, archive: Path) -> None:
    """Copy one member to `dest` (hard-linked when the source is a folder on the same disk)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if member.path is not None:
        try:
            os.link(member.path, dest)
            return
        except OSError:
            shutil.copyfile(member.path, dest)
            return
    with member.open() as handle, open(dest, "wb") as out:
        try:
            shutil.copyfileobj(handle, out, 1 << 20)
        except _CORRUPT as err:
            raise SegvitError(f"{archive} is truncated or corrupt ({err}); get it again") from None


# --- MATLAB 5 files (level 5 MAT-files, compressed or not) --------------------------------


def read_mat_variable(data: bytes, key: str, *, source: str) -> np.ndarray:
    """The numeric array `key` of a level-5 MAT-file's bytes (e.g. COCO-Stuff's 'S'), in the
    type of its MATLAB class and native byte order."""
    if b"MATLAB 7.3" in data[:128]:
        raise SegvitError(f"{source} is a MATLAB 7.3 (HDF5) file; expected a MATLAB 5/7 file")
    if len(data) < 128 or not data.startswith(b"MATLAB 5.0 MAT-file"):
        raise SegvitError(f"{source} is not a MATLAB file (or is truncated)")
    import scipy.io  # here: only COCO-Stuff and PASCAL-Context labels need it, not the demo
    from scipy.io.matlab import MatReadError

    try:
        classes = {name: cls for name, _, cls in scipy.io.whosmat(io.BytesIO(data))}
        found = scipy.io.loadmat(io.BytesIO(data), variable_names=[key]) if key in classes else {}
    except (OSError, EOFError, ValueError, TypeError, zlib.error, MatReadError) as err:
        raise SegvitError(f"{source} is truncated or corrupt ({err})") from None
    if key not in found:
        raise SegvitError(f"{source} has no variable {key!r}")
    # Cells, structs, text, sparse, logical and complex arrays are no label maps.
    array, dtype = found[key], _MATLAB_CLASSES.get(classes[key])
    if dtype is None or not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        raise SegvitError(f"{source}: variable {key!r} is not a real numeric array")
    return array.astype(dtype)  # MATLAB may store values narrower than their class


_MATLAB_CLASSES = {  # the numeric classes (scipy.io.whosmat's names) and their numpy types
    "double": "f8", "single": "f4", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2",
    "int32": "i4", "uint32": "u4", "int64": "i8", "uint64": "u8",
}  # fmt: skip


# --- COCO run-length masks (Detail API JSON) ----------------------------------------------


def decode_rle(counts: str | bytes | list[int], height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of a COCO RLE: alternate runs of 0s and 1s, column-major.

    `counts` is the compressed string (str as in JSON, or bytes as pycocotools returns it) or
    the uncompressed list of run lengths.
    """
    if isinstance(counts, str | bytes):
        runs: list[int] = []
        data, pos = counts.encode("ascii") if isinstance(counts, str) else counts, 0
        while pos < len(data):
            value, shift, more = 0, 0, True
            while more:
                chunk = data[pos] - 48
                value |= (chunk & 0x1F) << shift
                more, pos, shift = bool(chunk & 0x20), pos + 1, shift + 5
                if not more and chunk & 0x10:
                    value |= -1 << shift  # sign-extend the last 5-bit group
            # From the third run on, the string stores the difference to the run two back.
            runs.append(value + runs[-2] if len(runs) > 2 else value)
    else:
        runs = list(counts)
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise ValueError(f"runs cover {sum(runs)} pixels, expected {height}x{width}")
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return flat.reshape(width, height).T


# --- Installing a prepared tree ----------------------------------------------------------


@contextlib.contextmanager
def staging(root: Path, name: str) -> Iterator[Path]:
    """An empty scratch folder inside `root`, removed afterwards whatever happens.

    The scratch folder is on the same disk as the final tree, so installing is a rename. A
    lock per dataset keeps two `segvit prepare` runs from interleaving; holding it also
    makes any scratch folder left by a killed run safe to delete.
    """
    with exclusive_lock(root / f".segvit-{name}.lock", f"`segvit prepare {name}`"):
        for stale in root.glob(f".segvit-tmp-{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".segvit-tmp-{name}-", dir=root))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def install(built: Path, final: Path) -> None:
    """Move the tree `built` to `final`: one rename, or a merge of new folders into it.

    A merge (adding PASCAL-Context labels to an existing VOC2010 folder) writes PARTIAL with
    the paths it adds first and leaves it there: the caller verifies the merged tree, then
    deletes PARTIAL, or calls `undo_partial`, which is also what the next run does if this
    one was interrupted. Split lists (ImageSets) move last.
    """
    if not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(built, final)
        return
    added = _new_paths(built, final)
    write_json(final / PARTIAL, [p.relative_to(built).as_posix() for p in added], indent=1)
    for path in sorted(added, key=lambda p: "ImageSets" in p.parts):
        target = final / path.relative_to(built)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)


def _new_paths(built: Path, final: Path) -> list[Path]:
    added = []
    for path in sorted(built.iterdir()):
        target = final / path.name
        if not target.exists():
            added.append(path)
        elif path.is_dir() and target.is_dir():
            added += _new_paths(path, target)
        else:
            raise SegvitError(f"{target} already exists; remove it and run again")
    return added


def undo_partial(final: Path) -> bool:
    """Remove what an interrupted merge added to `final`; True if there was one."""
    marker = final / PARTIAL
    if not marker.exists():
        return False
    for relative in read_json(marker) or []:
        target = final / safe_name(relative, marker)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    marker.unlink()
    return True
