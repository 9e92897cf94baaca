"""The authors' seven released SegViT checkpoints: what each is, where it lives, fetching it.

The files are mmsegmentation checkpoints on huggingface.co/Akide/SegViTv1. This module only
names and downloads them (no torch needed, so `segvit weights list` answers at once);
segvit.modeling.convert reads one into a segvit model. `release:NAME` anywhere a checkpoint
is read means the cached file of that name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from segvit.data.download import Download, Unreachable
from segvit.data.download import fetch as download
from segvit.errors import SegvitError
from segvit.modeling.cache import release_dir

# References: SegViT release README (zbwxp/SegVit: file names, ss/ms mIoU), the paper's
# Tables 1-3 (GFLOPs), docs/release-checkpoints.md (crops, tensor layouts).

PREFIX = "release:"  # `release:ade_51.3` names a cached released file
BASE_URL = "https://huggingface.co/Akide/SegViTv1/resolve/main"


@dataclass(frozen=True)
class ReleasedModel:
    """One released file and the paper's numbers for it."""

    name: str  # the file's stem, e.g. "ade_51.3"; `release:NAME` and `weights fetch NAME`
    variant: str  # the segvit variant its tensors fit (segvit.modeling.variants)
    dataset: str  # the segvit dataset of its config's class count; the file itself decides
    crop: int  # training crop: position embeddings (and QU queries) are made for its grid
    paper_ss: float  # single-scale mIoU, as the release README reports it
    paper_ms: float  # multi-scale mIoU (ratios 0.5-1.75, flip)
    gflops: float  # the paper's GFLOPs at `crop`
    tensor_mb: int  # float32 tensors in its state dict (from the manifest): a size hint
    size: int | None = None  # exact bytes; None: not published anywhere this toolkit checked
    sha256: str | None = None  # None: unknown (the hub shows it; nobody recorded it here yet)

    @property
    def filename(self) -> str:
        return f"{self.name}.pth"

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.filename}"

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
        ReleasedModel("ade_51.3", "segvit_b", "ade20k", 512, 51.3, 53.0, 120.9, 435),
        ReleasedModel("ade_shrunk_53.9", "segvit_shrunk_l", "ade20k", 640, 53.9, 55.1, 373.5, 1378),
        ReleasedModel("ade_54.6", "segvit_l", "ade20k", 640, 54.6, 55.2, 637.9, 1377),
        ReleasedModel("COCOstuff10k_shrunk_49.1", "segvit_shrunk_l", "coco-stuff-10k", 512,
                      49.1, 49.4, 224.8, 1375),
        ReleasedModel("COCOstuff_49.9", "segvit_l", "coco-stuff-10k", 512, 49.9, 50.3, 383.9,
                      1375),
        ReleasedModel("PC59cls_62.3", "segvit_shrunk_l", "pascal-context", 480, 62.3, 63.7,
                      186.9, 1374),
        ReleasedModel("PC59cls_64.1", "segvit_l", "pascal-context", 480, 64.1, 65.3, 321.6,
                      1374),
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


def cached_path(release: ReleasedModel, cache_dir: Path | None = None) -> Path:
    return (cache_dir or release_dir()) / release.filename


def is_release_name(source: str | Path) -> bool:
    return str(source).startswith(PREFIX)


def resolve_cached(source: str | Path, cache_dir: Path | None = None) -> Path:
    """`release:NAME` -> its cached file, or one line saying how to get it."""
    release = get_release(str(source))
    path = cached_path(release, cache_dir)
    if not path.is_file():
        raise SegvitError(
            f"{PREFIX}{release.name} is not downloaded; fetch it with `segvit weights fetch "
            f"{release.name}`, or download {release.url} and put it at {path}"
        )
    return path


def fetch(
    name: str, cache_dir: Path | None = None, *, progress: bool = True, timeout: float = 30.0
) -> Path:
    """Download a released file into the cache (resuming a `.part` file), check its size and
    SHA-256 where known, and return its path. A cached file is checked, not fetched again."""
    release = get_release(name)
    folder = cache_dir or release_dir()
    target = cached_path(release, folder)
    advice = f"download {release.url} by hand and save it as {target}"
    item = Download(release.url, release.filename, None, f"about {release.tensor_mb} MB")
    try:
        path = download(item, folder, timeout=timeout, progress=progress)
    except Unreachable as err:  # offline, proxy, missing file: the same way out
        raise SegvitError(f"could not download {release.name} ({err}); {advice}") from None
    _verify(path, release)
    return path


def _verify(path: Path, release: ReleasedModel) -> None:
    """A wrong size or digest removes the file: a later fetch starts over."""
    size = path.stat().st_size
    if release.size is not None and size != release.size:
        path.unlink()
        raise SegvitError(
            f"{path}: {size} bytes, the published file has {release.size}; removed it, "
            "run `segvit weights fetch` again"
        )
    if release.sha256 is not None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        if digest.hexdigest() != release.sha256:
            path.unlink()
            raise SegvitError(
                f"{path}: SHA-256 {digest.hexdigest()} does not match the published "
                f"{release.sha256}; removed it, run `segvit weights fetch` again"
            )
