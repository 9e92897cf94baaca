"""The authors' seven released SegViT checkpoints: what each is, where it lives, fetching it.

The files are mmsegmentation checkpoints in the Hugging Face repository Akide/SegViTv1. They
are fetched with huggingface_hub into its standard cache, so HF_HOME, HF_HUB_CACHE,
HF_ENDPOINT (a mirror), HF_HUB_OFFLINE and files fetched with `hf download` all apply; a file
placed by hand in $SEGVIT_WEIGHTS/release is used before the cache. Every hub file is checked
against the SHA-256 the hub states for it. No torch here, so `segvit weights list` answers at
once; segvit.modeling.convert reads a file into a segvit model. `release:NAME` anywhere a
checkpoint is read means the local file of that name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from segvit.errors import SegvitError
from segvit.modeling.cache import release_dir

# References: SegViT release README (zbwxp/SegVit: file names, ss/ms mIoU), the paper's
# Tables 1-3 (GFLOPs), docs/release-checkpoints.md (crops, tensor layouts).

PREFIX = "release:"  # `release:ade_51.3` names a cached released file
HF_PREFIX = "hf:"  # `hf:OWNER/NAME` names an exported model folder on the hub (segvit.load)
REPO = "Akide/SegViTv1"  # the authors' Hugging Face model repository
REVISION = "main"


@dataclass(frozen=True)
class ReleasedModel:
    """One released file and the paper's numbers for it."""

    name: str  # the file's stem, e.g. "ade_51.3"; `release:NAME` and `weights fetch NAME`
    variant: str  # the segvit variant its tensors fit (segvit.modeling.variants)
    dataset: str  # the segvit dataset of its config's class count; the file itself decides
    paper_ss: float  # single-scale mIoU, as the release README reports it
    paper_ms: float  # multi-scale mIoU (ratios 0.5-1.75, flip)
    gflops: float  # the paper's GFLOPs at `crop`
    tensor_mb: int  # float32 tensors in its state dict (from the manifest): a size hint

    @property
    def filename(self) -> str:
        return f"{self.name}.pth"

    @property
    def crop(self) -> int:
        """Its training crop, the dataset's for its ViT size: position embeddings (and QU
        queries) are made for its grid."""
        from segvit.data.catalog import get_dataset  # no torch: `weights list` stays quick
        from segvit.modeling.variants import get_variant

        return get_dataset(self.dataset).crop_for(get_variant(self.variant).large)

    @property
    def checkpoint(self) -> str:
        """How a checkpoint argument names it: `release:NAME`."""
        return f"{PREFIX}{self.name}"

    @property
    def model(self) -> str:
        """How the paper names the model."""
        return {
            "segvit_b": "SegViT ViT-B",
            "segvit_l": "SegViT ViT-L",
            "segvit_shrunk_l": "SegViT Shrunk ViT-L",
        }[self.variant]


# The PASCAL-Context files are labelled "59cls" and their numbers are mIoU over 59 classes,
# but the release's config trains 60 (background included): the converter reads the class
# count from the file and picks pascal-context (60) or pascal-context-59 accordingly.
RELEASES: dict[str, ReleasedModel] = {
    r.name: r
    for r in (
        ReleasedModel("ade_51.3", "segvit_b", "ade20k", 51.3, 53.0, 120.9, 435),
        ReleasedModel("ade_shrunk_53.9", "segvit_shrunk_l", "ade20k", 53.9, 55.1, 373.5, 1378),
        ReleasedModel("ade_54.6", "segvit_l", "ade20k", 54.6, 55.2, 637.9, 1377),
        ReleasedModel("COCOstuff10k_shrunk_49.1", "segvit_shrunk_l", "coco-stuff-10k", 49.1,
                      49.4, 224.8, 1375),
        ReleasedModel("COCOstuff_49.9", "segvit_l", "coco-stuff-10k", 49.9, 50.3, 383.9, 1375),
        ReleasedModel("PC59cls_62.3", "segvit_shrunk_l", "pascal-context", 62.3, 63.7, 186.9,
                      1374),
        ReleasedModel("PC59cls_64.1", "segvit_l", "pascal-context", 64.1, 65.3, 321.6, 1374),
    )
}  # fmt: skip


def get_release(name: str) -> ReleasedModel:
    """A released model by name (with or without `release:` and `.pth`)."""
    stem = name.removeprefix(PREFIX).removesuffix(".pth")
    try:
        return RELEASES[stem]
    except KeyError:
        raise SegvitError(
            f"unknown released model {name!r}; expected one of: {', '.join(RELEASES)}"
        ) from None


def release_for(variant: str, dataset: str, crop: int) -> ReleasedModel | None:
    """The released model of this variant, dataset and crop, if the authors published one."""
    for release in RELEASES.values():
        if (release.variant, release.dataset, release.crop) == (variant, dataset, crop):
            return release
    return None


def placed_path(release: ReleasedModel) -> Path:
    """Where a file downloaded by hand goes: $SEGVIT_WEIGHTS/release/NAME.pth."""
    return release_dir() / release.filename


def cached_path(release: ReleasedModel) -> Path:
    """The local file of `release`: the one placed by hand, else the Hugging Face cache's;
    where to place it by hand when there is neither. Never touches the network."""
    placed = placed_path(release)
    return placed if placed.is_file() else (_hub_cached(release) or placed)


def is_release_name(source: str | Path) -> bool:
    return str(source).startswith(PREFIX)


def resolve_cached(source: str | Path) -> Path:
    """`release:NAME` -> its local file (a hub file checked against its SHA-256), or one line
    saying how to get it."""
    release = get_release(str(source))
    path = cached_path(release)
    if not path.is_file():
        raise SegvitError(
            f"{PREFIX}{release.name} is not downloaded; fetch it with `segvit weights fetch "
            f"{release.name}` or {_how_to_get(release)}"
        )
    if path != placed_path(release):
        _check_digest(path, release)
    return path


@dataclass(frozen=True)
class Fetched:
    """What `fetch` found: the file, where it came from, whether it matched the hub's word."""

    path: Path
    placed: bool  # placed by hand in $SEGVIT_WEIGHTS/release, not in the hub cache
    checked: bool  # size and SHA-256 equal what the hub states (False: the hub did not answer)


def fetch(name: str) -> Fetched:
    """The local file of a released model. One placed by hand is used, compared with the size
    and SHA-256 the hub states when the hub answers; else the Hugging Face cache's, downloaded
    when missing (hf_hub_download: a dropped connection is resumed, the size checked, a
    progress bar on a terminal unless HF_HUB_DISABLE_PROGRESS_BARS) and its SHA-256 checked."""
    release = get_release(name)
    placed = placed_path(release)
    if placed.is_file():
        _check_size(placed, release, "")  # what segvit knows of the file, hub or not
        return Fetched(placed, placed=True, checked=_check_placed(placed, release))
    # What the hub states is checked BEFORE hf_hub_download acts on it: the library names the
    # cached blob after the ETag and the snapshot folder after the commit, so a mirror that
    # answers `../x` would have it write outside the cache.
    stated = _hub_metadata(release)
    if stated is not None:
        _check_stated(release, *stated)
    path = _hub_download(release)
    _check_size(path, release, "")
    return Fetched(path, placed=False, checked=_check_digest(path, release))


def expected_bytes(release: ReleasedModel) -> tuple[int, int]:
    """The sizes a file of `release` may have: its float32 tensors (the manifest's
    `tensor_mb`, MB or MiB) give or take 10% for the pickle around them."""
    return int(release.tensor_mb * 1e6 * 0.9), int(release.tensor_mb * 2**20 * 1.1)


def _check_size(path_or_size: Path | int, release: ReleasedModel, where: str) -> None:
    size = path_or_size if isinstance(path_or_size, int) else path_or_size.stat().st_size
    low, high = expected_bytes(release)
    if not low <= size <= high:
        what = where or f"{path_or_size}:"
        raise SegvitError(
            f"{what} {size:,} bytes, where {release.filename} holds about {release.tensor_mb} MB "
            f"of tensors ({low:,} to {high:,} bytes); not the released file"
        )


def _check_stated(
    release: ReleasedModel, size: int | None, sha256: str | None, commit: str
) -> None:
    """Refuse, before any download, an answer that is not the released file's: an ETag that
    is no SHA-256, a commit that is no git hash, a size far from the file's."""
    where = f"the hub ({hub_url(release)}) states"
    if sha256 is None:
        raise SegvitError(f"{where} no SHA-256 ETag for {release.filename}; refusing to download")
    if not _COMMIT.fullmatch(commit):
        raise SegvitError(
            f"{where} the revision {commit!r}, not a git commit; refusing to download"
        )
    if size is not None:
        _check_size(size, release, f"{where} {release.filename} has")


def hub_url(release: ReleasedModel) -> str:
    """The file's address on the configured endpoint (HF_ENDPOINT, a mirror, or the hub)."""
    from huggingface_hub import hf_hub_url

    return hf_hub_url(REPO, release.filename, revision=REVISION)


def _how_to_get(release: ReleasedModel) -> str:
    return (
        f"`hf download {REPO} {release.filename}` (huggingface_hub's CLI, the same cache), or "
        f"download {hub_url(release)} by hand and save it as {placed_path(release)}"
    )


def _hub_cached(release: ReleasedModel) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(REPO, release.filename, revision=REVISION)
    return Path(found) if isinstance(found, str) else None  # also not "known missing"


def _hub_download(release: ReleasedModel) -> Path:
    import httpx2  # huggingface_hub's HTTP client: its errors are the network's
    from huggingface_hub import hf_hub_download

    try:
        found = hf_hub_download(REPO, release.filename, revision=REVISION, library_name="segvit")
    except (OSError, httpx2.HTTPError) as err:  # the hub's errors are OSErrors too
        raise SegvitError(
            f"could not download {release.name} ({_reason(err)}); get it with "
            f"{_how_to_get(release)}"
        ) from None
    return Path(found)


def _reason(err: BaseException) -> str:
    """One line for what hf_hub_download raised: offline, unreachable, an HTTP status."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    cause = err
    if isinstance(err, LocalEntryNotFoundError) and err.__cause__ is not None:
        cause = err.__cause__  # "not in the cache": why the hub could not be asked
    if isinstance(cause, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set and the Hugging Face cache has no copy"
    if isinstance(cause, HfHubHTTPError) and cause.response is not None:
        return f"{cause.response.request.url} answered HTTP {cause.response.status_code}"
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"


_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _check_digest(path: Path, release: ReleasedModel) -> bool:
    """hf_hub_download checks a file's size, not its content. The hub states an LFS file's
    SHA-256 as its ETag and the cache names the blob after it, so the blob is hashed and
    compared here; a mismatch removes it so the next fetch downloads it anew."""
    blob = path.resolve()  # snapshots/COMMIT/NAME.pth -> blobs/ETAG
    stated = blob.name
    if not _SHA256.fullmatch(stated):
        return False  # a cache without symlinks (Windows) keeps no blob name: nothing to compare
    digest = _sha256(blob)
    if digest != stated:
        redo = f"run `segvit weights fetch {release.name}` again"
        try:
            blob.unlink()
            path.unlink(missing_ok=True)
        except OSError as err:  # a read-only shared cache
            redo = f"could not remove it ({err.strerror}): delete {blob} and {redo}"
        else:
            redo = f"removed it, {redo}"
        raise SegvitError(
            f"{path}: SHA-256 {digest} does not match the {stated} the hub states for "
            f"{release.filename}; {redo}"
        )
    return True


def _check_placed(path: Path, release: ReleasedModel) -> bool:
    """A file placed by hand against the hub's word, when the hub answers (offline it is used
    unchecked). It is the user's file: a mismatch is reported, never deleted."""
    stated = _hub_metadata(release)
    if stated is None:
        return False
    size, sha256, _ = stated
    redo = f"replace it, or delete it and run `segvit weights fetch {release.name}`"
    if size is not None and path.stat().st_size != size:
        raise SegvitError(
            f"{path}: {path.stat().st_size} bytes, the hub states {size} for "
            f"{release.filename}; {redo}"
        )
    if sha256 is not None and (digest := _sha256(path)) != sha256:
        raise SegvitError(
            f"{path}: SHA-256 {digest} does not match the {sha256} the hub states for "
            f"{release.filename}; {redo}"
        )
    return True


def _hub_metadata(release: ReleasedModel) -> tuple[int | None, str | None, str] | None:
    """(size, SHA-256, commit) as the hub states them (a HEAD request, no retries), None when
    it does not answer (offline, unreachable, not on this endpoint)."""
    import httpx2
    from huggingface_hub import get_hf_file_metadata

    try:
        stated = get_hf_file_metadata(hub_url(release))
    except (OSError, httpx2.HTTPError):
        return None
    etag = stated.etag or ""
    return stated.size, etag if _SHA256.fullmatch(etag) else None, stated.commit_hash or ""


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
