"""Reading the official archives safely, the annotation containers inside them, and
installing a prepared tree atomically.

`segvit prepare` never trusts an archive: member names that would land outside the target
folder, links and devices are refused; a truncated archive is one error naming it. The
official annotations come as MATLAB 5 files (COCO-Stuff-10K, PASCAL-Context) and COCO
run-length masks (the Detail JSON of PASCAL-Context); both are small formats decoded here so
that preparing needs neither scipy nor pycocotools. A tree is built in a scratch folder inside
the data root and renamed into place, so an interrupted run leaves nothing that looks done.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import stat
import struct
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
from segvit.fileio import read_json, write_json

# References: MATLAB "MAT-File Format" (level 5) specification; the COCO API's compressed
# run-length encoding (rleFrString / rleDecode) as documented with pycocotools. Both
# readers are tested against files written by scipy.io.savemat and pycocotools.mask.encode.

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

_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
              12: "i8", 13: "u8"}  # fmt: skip
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
              14: "i8", 15: "u8"}  # fmt: skip
_MI_MATRIX, _MI_COMPRESSED = 14, 15


def read_mat_variable(data: bytes, key: str, *, source: str) -> np.ndarray:
    """The numeric array `key` of a level-5 MAT-file's bytes (e.g. COCO-Stuff's 'S')."""
    if b"MATLAB 7.3" in data[:128]:
        raise SegvitError(f"{source} is a MATLAB 7.3 (HDF5) file; expected a MATLAB 5/7 file")
    if len(data) < 128 or not data.startswith(b"MATLAB 5.0 MAT-file"):
        raise SegvitError(f"{source} is not a MATLAB file (or is truncated)")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        raise SegvitError(f"{source} has an unreadable MATLAB header")
    pos = 128
    try:
        while pos < len(data):
            mtype, body, pos = _element(data, pos, order)
            if mtype == _MI_COMPRESSED:
                mtype, body, _ = _element(zlib.decompress(body), 0, order)
            if mtype == _MI_MATRIX:
                array = _matrix(body, order, key, source)
                if array is not None:
                    return array
    except (struct.error, zlib.error, ValueError) as err:
        raise SegvitError(f"{source} is truncated or corrupt ({err})") from None
    raise SegvitError(f"{source} has no variable {key!r}")


def _element(buf: bytes, pos: int, order: str) -> tuple[int, bytes, int]:
    """(type, payload, next position) of the data element at `pos`, padded to 8 bytes."""
    (first,) = struct.unpack_from(order + "I", buf, pos)
    if first >> 16:  # small element: type and size share one word, data in the next four
        return first & 0xFFFF, buf[pos + 4 : pos + 4 + (first >> 16)], pos + 8
    (size,) = struct.unpack_from(order + "I", buf, pos + 4)
    end = pos + 8 + size
    if end > len(buf):
        raise ValueError(f"element of {size} bytes runs past the end")
    step = size if first == _MI_COMPRESSED else (size + 7) // 8 * 8
    return first, buf[pos + 8 : end], pos + 8 + step


def _matrix(body: bytes, order: str, key: str, source: str) -> np.ndarray | None:
    _, flags, pos = _element(body, 0, order)
    _, dims, pos = _element(body, pos, order)
    _, name, pos = _element(body, pos, order)
    if name.decode("ascii", "replace") != key:
        return None
    (word,) = struct.unpack_from(order + "I", flags, 0)
    mx_class, shape = word & 0xFF, struct.unpack(f"{order}{len(dims) // 4}i", dims)
    if mx_class not in _MX_DTYPES or word & 0x800:
        raise SegvitError(f"{source}: variable {key!r} is not a real numeric array")
    mtype, real, _ = _element(body, pos, order)
    if mtype not in _MI_DTYPES:
        raise SegvitError(f"{source}: variable {key!r} has an unknown storage type {mtype}")
    # MATLAB stores values in the smallest type that holds them; the class says what they are.
    values = np.frombuffer(real, order + _MI_DTYPES[mtype], count=int(np.prod(shape)))
    return values.astype(_MX_DTYPES[mx_class]).reshape(shape, order="F")


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
    with open(root / f".segvit-{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SegvitError(f"another `segvit prepare {name}` is running on {root}") from None
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
