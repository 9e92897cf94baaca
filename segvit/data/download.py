"""Finding the official archives, or downloading them: resumable, checksummed, with progress.

A download goes to `<name>.part` beside its final name and is renamed only once complete and
its checksum matches, so a file under its final name is always whole. An interrupted
download resumes with an HTTP Range request; a server that ignores Range restarts it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from segvit.data.archives import Source
from segvit.data.info import Download, Inputs, Preparation
from segvit.errors import SegvitError


class Unreachable(SegvitError):
    """The server could not be reached or refused the file; the caller says what to do."""


def fetch(item: Download, folder: Path, *, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `item` into `folder` (resuming a `.part` file) and return its final path."""
    dest = folder / item.filename
    if dest.is_file():
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "segvit"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(item.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not offset:  # 416: the part file already holds everything
            raise Unreachable(f"{item.url} answered HTTP {err.code}") from None
        response = None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise Unreachable(f"{item.url} is unreachable ({reason})") from None
    if response is not None:
        with response:
            _receive(response, part, offset, item, progress)
    if item.sha1 is not None:
        with open(part, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha1").hexdigest()
        if digest != item.sha1:
            part.unlink()
            raise SegvitError(
                f"{item.filename}: SHA-1 {digest} does not match the published {item.sha1}; "
                "the download was removed, run again to fetch it anew"
            )
    os.replace(part, dest)
    return dest


def _receive(response, part: Path, offset: int, item: Download, progress: bool) -> None:
    if offset and getattr(response, "status", None) != 206:
        offset = 0  # the server ignored the Range header: start over
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length else None
    mode = "ab" if offset else "wb"
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=item.filename,
               disable=None if progress else True)  # fmt: skip
    with open(part, mode) as out, bar:
        try:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise Unreachable(
                f"the download of {item.url} broke off after {out.tell() >> 20} MB ({err}); "
                "run again to resume it"
            ) from None
    received = part.stat().st_size
    if total is not None and received != total:
        raise Unreachable(
            f"the download of {item.url} stopped at {received} of {total} bytes; "
            "run again to resume it"
        )


# --- Finding the inputs of a dataset ------------------------------------------------------


def find_inputs(
    prep: Preparation, src: Path | None, root: Path, *, in_place: Path | None, progress: bool
) -> Inputs:
    """The archives `prep` starts from: from --src, else found under `root`, else downloaded."""
    found: dict[str, Path] = {"main": in_place} if in_place is not None else {}
    if src is not None:
        src = Path(src)
        if not src.exists():
            raise SegvitError(f"--src {src} does not exist")
        if src.is_file():
            found.setdefault(_role_of_file(prep, src), src)
        folders = [src.parent if src.is_file() else src]
    else:
        folders = [root / "downloads", root]
    for role, archive in prep.archives.items():
        for folder in folders:
            hits = [folder / n for n in archive.names if (folder / n).exists()]
            if archive.holds is not None and (folder / archive.holds).exists():
                hits.append(folder)
            if hits and role not in found:
                found[role] = hits[0]
    missing = [role for role in prep.archives if role not in found]
    if missing and src is not None:
        wanted = " / ".join(prep.archives[missing[0]].names)
        raise SegvitError(f"--src {src}: found no {wanted} for {prep.name}")
    if missing:
        found.update(_download(prep, missing, root / "downloads", progress))
    main = found.pop("main")
    return Inputs(Source(main), found, in_place is not None)


def _role_of_file(prep: Preparation, path: Path) -> str:
    """The role of a file given with --src: the archive it is named as, or whose suffix it
    has, other than the main one; else the main one."""
    for role, archive in prep.archives.items():
        if role != "main" and (path.name in archive.names or path.suffix in archive.suffixes):
            return role
    return "main"


def _download(
    prep: Preparation, missing: list[str], folder: Path, progress: bool
) -> dict[str, Path]:
    key, items = prep.name, {role: prep.archives[role].download for role in missing}
    got = {}
    try:
        for role in missing:
            got[role] = fetch(items[role], folder, progress=progress)
    except Unreachable as err:
        files = "; ".join(f"{items[r].url} ({items[r].size})" for r in missing)
        root = "" if folder.parent == Path("data") else f" --root {folder.parent}"  # as asked
        raise SegvitError(
            f"cannot download {key}: {err}. Download {files} yourself, put the file(s) in "
            f"{folder}/ (or pass --src PATH), then run `segvit prepare {key}{root}` again"
        ) from None
    return got
