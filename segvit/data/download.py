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
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from segvit.data.archives import Source
from segvit.errors import SegvitError

# References: checksums as published with the GluonCV / PyTorch-Encoding dataset scripts
# (SHA-1 of ADEChallengeData2016.zip, VOCtrainval_03-May-2010.tar, trainval_merged.json).


@dataclass(frozen=True)
class Download:
    url: str
    filename: str
    sha1: str | None  # None where no published checksum is known
    size: str  # for messages, e.g. "about 0.9 GB"


ADE20K_ZIP = Download(
    "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
    "ADEChallengeData2016.zip",
    "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7",
    "about 0.9 GB",
)
COCO_STUFF_10K_ZIP = Download(
    "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/cocostuff-10k-v1.1.zip",
    "cocostuff-10k-v1.1.zip",
    None,
    "about 2.0 GB",
)
VOC2010_TAR = Download(
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
    "VOCtrainval_03-May-2010.tar",
    "bf9985e9f2b064752bf6bd654d89f017c76c395a",
    "about 1.3 GB",
)
PASCAL_CONTEXT_JSON = Download(
    "https://codalabuser.blob.core.windows.net/public/trainval_merged.json",
    "trainval_merged.json",
    "169325d9f7e9047537fedca7b04de4dddf10b881",
    "the PASCAL-Context labels of the Detail API",
)

# What `segvit prepare NAME` downloads when it finds nothing to start from.
DOWNLOADS: dict[str, tuple[Download, ...]] = {
    "ade20k": (ADE20K_ZIP,),
    "coco-stuff-10k": (COCO_STUFF_10K_ZIP,),
    "pascal-context": (VOC2010_TAR, PASCAL_CONTEXT_JSON),
}


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

# Per dataset: the roles of its inputs and the names each may have in a searched folder.
_CANDIDATES = {
    "ade20k": {"main": ("ADEChallengeData2016.zip", "ADEChallengeData2016")},
    "coco-stuff-10k": {"main": ("cocostuff-10k-v1.1.zip", "cocostuff-10k-v1.1")},
    "pascal-context": {
        "main": ("VOCtrainval_03-May-2010.tar", "VOCdevkit/VOC2010", "VOC2010"),
        "context": (
            "trainval_merged.json",
            "VOCdevkit/VOC2010/trainval_merged.json",
            "trainval.tar.gz",
            "trainval",
        ),  # fmt: skip
    },
}
# A searched folder that is itself the extracted archive holds this file.
_EXTRACTED_HINT = {"ade20k": "images/training", "coco-stuff-10k": "imageLists/train.txt",
                   "pascal-context": "JPEGImages"}  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    main: Source  # the images (and for ADE20K / COCO-Stuff the labels too)
    context: Path | None = None  # PASCAL-Context labels: the Detail JSON or the .mat archive
    in_place: bool = False  # `main` is the final tree itself: read from it, copy nothing


def find_inputs(
    key: str, src: Path | None, root: Path, *, in_place: Path | None, progress: bool
) -> Inputs:
    """The inputs of `key`: from --src, else found under `root`, else downloaded."""
    found: dict[str, Path] = {"main": in_place} if in_place is not None else {}
    if src is not None:
        src = Path(src)
        if not src.exists():
            raise SegvitError(f"--src {src} does not exist")
        if src.is_file():
            found.setdefault(_role_of_file(key, src), src)
        folders = [src.parent if src.is_file() else src]
    else:
        folders = [root / "downloads", root]
    for role, names in _CANDIDATES[key].items():
        for folder in folders:
            hits = [folder / n for n in names if (folder / n).exists()]
            if role == "main" and (folder / _EXTRACTED_HINT[key]).exists():
                hits.append(folder)
            if hits and role not in found:
                found[role] = hits[0]
    missing = [role for role in _CANDIDATES[key] if role not in found]
    if missing and src is not None:
        wanted = " / ".join(_CANDIDATES[key][missing[0]])
        raise SegvitError(f"--src {src}: found no {wanted} for {key}")
    if missing:
        found.update(_download(key, missing, root / "downloads", progress))
    return Inputs(Source(found["main"]), found.get("context"), in_place is not None)


def _role_of_file(key: str, path: Path) -> str:
    if key == "pascal-context" and (path.suffix == ".json" or path.name == "trainval.tar.gz"):
        return "context"
    return "main"


def _download(key: str, missing: list[str], folder: Path, progress: bool) -> dict[str, Path]:
    items = dict(zip(_CANDIDATES[key], DOWNLOADS[key], strict=True))
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
