"""`segvit prepare`: the official archives -> mmsegmentation's standard layout, verified.

Routes, per dataset (first found wins; --src names a file or a folder to look in, otherwise
ROOT/downloads and ROOT are searched and, failing that, the archives are downloaded):
- ade20k: ADEChallengeData2016.zip, or that zip already extracted.
- coco-stuff-10k: cocostuff-10k-v1.1.zip, or it extracted (images/, annotations/*.mat,
  imageLists/); labels become mmsegmentation's *_labelTrainIds.png (171 classes, +1, 0 unlabelled).
- pascal-context: VOCtrainval_03-May-2010.tar (or VOCdevkit/VOC2010 extracted, also in place
  under ROOT) plus either trainval_merged.json (the Detail API labels mmsegmentation uses:
  4,996 / 5,104 images) or PASCAL-Context's trainval.tar.gz of .mat files (459-class labels
  mapped to the 59 + background; VOC 2010's Main split: 4,998 / 5,105 images).
- any dataset: a tree already prepared for mmsegmentation under ROOT is verified and used.
The names each archive may have, where it is downloaded from and which builder below turns it
into the tree are the set's `Preparation` (segvit.data.catalog).

A tree is built in a scratch folder inside ROOT, verified (counts, pairs, sizes, every file
decodable, label ids in range), renamed into place, and only then marked done; a second run
sees the mark, re-checks counts and pairs, and returns.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from segvit.data import archives
from segvit.data.archives import MARKER, PARTIAL, Source
from segvit.data.classes import COCO_STUFF_IDS, PASCAL_CONTEXT_IDS
from segvit.data.download import find_inputs
from segvit.data.info import DatasetSpec, Inputs
from segvit.errors import SegvitError
from segvit.fileio import read_json, write_json

# References: mmsegmentation 0.24 tools/convert_datasets (coco_stuff10k.py, pascal_context.py)
# and its dataset preparation guide, for layouts, file names and the label conversions.

# PASCAL-Context .mat route: VOC 2010's ImageSets/Main train/val lists (10,103 images).
MAT_ROUTE_COUNTS = {"train": 4998, "val": 5105}


def prepare_dataset(info: DatasetSpec, *, src: Path | None = None, root: Path = Path("data"),
                    progress: bool = True) -> Path:  # fmt: skip
    """Build (or check) the built-in set `info` under `root` and return its tree's folder."""
    root = Path(root)
    _check_writable(root)
    prep = info.preparation
    if prep is None:
        raise SegvitError(f"{info.name} is read from {info.source}; there is nothing to prepare")
    if (prep.generate if prep.generated else prep.build) is None:
        raise SegvitError(f"{info.name}: this spec was read from a record; prepare it by name")
    if prep.generated:
        prep.generate(info, root)
        verify_dataset(info, root)
        return info.root(root)
    key, final = prep.name, info.root(root)
    with archives.staging(root, key) as scratch:
        archives.undo_partial(final)
        holds = prep.archives["main"].holds
        augment = (
            prep.in_place
            and holds is not None
            and (final / holds).is_dir()
            and not (final / info.train.labels).exists()
        )
        if final.exists() and not augment:
            return _adopt(info, final, progress)
        inputs = find_inputs(
            prep, src, root, in_place=final if augment else None, progress=progress
        )
        try:
            built, route = prep.build(info, inputs, scratch / final.name, progress)
            if augment:
                archives.install(built, final)
                _verify_or_undo(info, final, route, progress)
            else:
                _verify_built(info, built, final, route, inputs.main, progress)
                archives.install(built, final)
            (final / PARTIAL).unlink(missing_ok=True)
            _mark(info, final, route)
        except OSError as err:
            raise _write_error(err, root) from None
    return final


def verify_dataset(info: DatasetSpec, root: Path, *, deep: bool = False) -> None:
    """Check `info`'s tree under `root`: split counts and pairs; with `deep`, every file.

    Raises SegvitError naming the first problem. A tree left by an interrupted run fails.
    """
    tree = info.root(root)
    if not tree.is_dir():
        raise SegvitError(f"no {info.name} data at {tree}; {info.how_to_get()}")
    if (tree / PARTIAL).exists():
        raise SegvitError(f"an interrupted `segvit prepare` left {tree} incomplete; run it again")
    expected = expected_counts(info, read_json(tree / MARKER))
    _verify_tree(info, tree, expected, deep=deep, progress=False)


def expected_counts(info: DatasetSpec, marker: object) -> dict[str, int | None]:
    """Images per split ("train", "val"; None: any number): the official release's (per
    route for PASCAL-Context), the spec's, or for a generated set (the demo set) the counts
    it was generated with (its marker names the split folders)."""
    marker = marker if isinstance(marker, dict) else {}
    if info.generated and isinstance(marker.get("counts"), dict):
        by_folder = {Path(info.split(s).images).name: s for s in ("train", "val")}
        return {by_folder.get(k, k): int(count) for k, count in marker["counts"].items()}
    if marker.get("route") == "context-mat":
        return dict(MAT_ROUTE_COUNTS)
    return {"train": info.train.count, "val": info.val.count}


def _verify_tree(
    info: DatasetSpec, tree: Path, counts: dict[str, int | None], *, deep: bool, progress: bool
) -> None:
    # Imported here, as in demo.py: the catalogue, which names the builders of this module,
    # then reads without torch (segvit.data.datasets imports it), as `weights list` needs.
    from segvit.data.datasets import check_pairs, list_pairs

    pairs = []
    for split, expected in counts.items():
        found = list_pairs(info, tree, split)
        if expected is not None and len(found) != expected:
            why = (
                f"the count in {info.source}" if info.source
                else "the source is incomplete or not the official release"
            )  # fmt: skip
            raise SegvitError(
                f"{tree}: {len(found)} {split} image/label pairs, expected {expected} for "
                f"{info.name}; {why}"
            )
        pairs += found
    if deep:
        check_pairs(pairs, info, progress=progress)


def _verify_built(
    info: DatasetSpec, built: Path, final: Path, route: str, source: Source, progress: bool
) -> None:
    """Verify a tree in the scratch folder, naming files as the source holds them and the
    tree by the folder it was being built for (the scratch folder is deleted on failure)."""
    try:
        _verify_tree(
            info, built, expected_counts(info, {"route": route}), deep=True, progress=progress
        )
    except SegvitError as err:
        message = str(err).replace(f"{built}/", "").replace(str(built), str(final))
        raise SegvitError(f"in {source.path}: {message}") from None


def _verify_or_undo(info: DatasetSpec, final: Path, route: str, progress: bool) -> None:
    try:
        _verify_tree(
            info, final, expected_counts(info, {"route": route}), deep=True, progress=progress
        )
    except SegvitError:
        archives.undo_partial(final)
        raise


def _adopt(info: DatasetSpec, final: Path, progress: bool) -> Path:
    """An existing tree: ours (marked) gets the quick check, any other one the full check."""
    marker = read_json(final / MARKER)
    try:
        counts = expected_counts(info, marker)
        _verify_tree(info, final, counts, deep=marker is None, progress=progress)
    except SegvitError as err:
        raise SegvitError(
            f"{final} exists but is not a complete {info.name} tree ({err}); segvit leaves "
            "folders it did not finish alone: move it away and run `segvit prepare` again"
        ) from None
    if marker is None:
        _mark(info, final, "existing")
    return final


def _mark(info: DatasetSpec, final: Path, route: str) -> None:
    counts = expected_counts(info, {"route": route})
    payload = {"dataset": info.prepare, "route": route, "counts": counts}
    write_json(final / MARKER, payload, indent=1)


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".segvit-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SegvitError(f"cannot write to the data root {root}: {err.strerror}") from None


def _write_error(err: OSError, root: Path) -> SegvitError:
    where = err.filename or root
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return SegvitError(
            f"no space left on the disk of {root} while writing {where}; free space and run "
            "again (nothing partial was left behind)"
        )
    return SegvitError(f"{where}: {err.strerror}")


# --- Builders: inputs -> a tree in the scratch folder ------------------------------------------


def _relative(name: str, anchors: tuple[str, ...]) -> str | None:
    """The part of a member name from the first anchor folder on, or None (not ours)."""
    if name.startswith("__MACOSX/"):
        return None
    for anchor in anchors:
        if name.startswith(anchor):
            return name
        at = name.find("/" + anchor)
        if at >= 0:
            return name[at + 1 :]
    return None


def _members(source: Source, progress: bool, what: str):
    return tqdm(source.members(), desc=what, unit="file", disable=None if progress else True)


def build_ade20k(
    info: DatasetSpec, inputs: Inputs, built: Path, progress: bool
) -> tuple[Path, str]:
    source = inputs.main
    for member in _members(source, progress, "ADE20K"):
        rel = _relative(member.name, ("images/", "annotations/"))
        if rel is None and member.name.rsplit("/", 1)[-1] in (
            "objectInfo150.txt",
            "sceneCategories.txt",
        ):
            rel = member.name.rsplit("/", 1)[-1]
        if rel is not None:
            archives.write_member(member, built / rel, source.path)
    return built, "ade-zip" if source.kind == "zip" else "ade-extracted"


def build_coco_stuff(
    info: DatasetSpec, inputs: Inputs, built: Path, progress: bool
) -> tuple[Path, str]:
    """COCO-Stuff ids (0 unlabelled, 1..182 with gaps) -> 0 unlabelled, 1..171 contiguous."""
    source = inputs.main
    wanted = ("imageLists/train.txt", "imageLists/test.txt")
    lists = {
        m.name: archives.read_member(m, source.path)
        for m in source.members()
        if _relative(m.name, ("imageLists/",)) in wanted
    }
    split_of = {}
    for name, text in lists.items():
        split = "train2014" if name.endswith("train.txt") else "test2014"
        split_of.update(
            {line.strip(): split for line in text.decode().splitlines() if line.strip()}
        )
    if not split_of:
        raise SegvitError(f"{source.path} has no imageLists/train.txt and test.txt")
    lut = np.zeros(256, np.uint8)
    lut[list(COCO_STUFF_IDS)] = np.arange(1, len(COCO_STUFF_IDS) + 1)
    for member in _members(source, progress, "COCO-Stuff-10K"):
        rel = _relative(member.name, ("images/", "annotations/", "imageLists/"))
        stem = Path(member.name).stem
        if rel is None or (not rel.startswith("imageLists/") and stem not in split_of):
            continue
        if rel.startswith("imageLists/"):
            archives.write_member(member, built / rel, source.path)
        elif rel.startswith("images/"):
            archives.write_member(
                member, built / "images" / split_of[stem] / f"{stem}.jpg", source.path
            )
        elif rel.endswith(".mat"):
            where = f"{source.path}:{member.name}"
            ids = archives.read_mat_variable(
                archives.read_member(member, source.path), "S", source=where
            )
            label = lut[np.where(ids < 256, ids, 0).astype(np.uint8)]  # unknown ids: unlabelled
            _save_png(label, built / "annotations" / split_of[stem] / f"{stem}_labelTrainIds.png")
    return built, "coco-zip" if source.kind == "zip" else "coco-extracted"


def build_pascal_context(
    info: DatasetSpec, inputs: Inputs, built: Path, progress: bool
) -> tuple[Path, str]:
    """JPEGImages (unless building in place), 0..59 labels and the split lists."""
    voc, lists = inputs.main, {}
    for member in _members(voc, progress, "VOC2010"):
        rel = _relative(member.name, ("JPEGImages/", "ImageSets/Main/"))
        if rel is None:
            continue
        if rel.startswith("JPEGImages/") and not inputs.in_place:
            archives.write_member(member, built / rel, voc.path)
        elif rel in ("ImageSets/Main/train.txt", "ImageSets/Main/val.txt"):
            lists[Path(rel).stem] = set(archives.read_member(member, voc.path).decode().split())
    labels, context = built / info.train.labels, inputs.others["context"]
    if context.suffix == ".json":
        splits, route = _detail_labels(context, labels, progress), "detail-json"
    else:
        splits, route = lists, "context-mat"
        _mat_labels(Source(context), labels, progress)
        if set(lists) != {"train", "val"}:
            raise SegvitError(f"{voc.path} has no ImageSets/Main/train.txt and val.txt")
    for split, stems in splits.items():
        listing = built / (info.split(split).listing or "")
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{stem}\n" for stem in sorted(stems)))
    return built, route


def _context_lut(others: int) -> np.ndarray:
    """PASCAL-Context 459-class id -> 0..59 (background 0); every other id -> `others`."""
    lut = np.full(460, others, np.int64)
    lut[list(PASCAL_CONTEXT_IDS)] = np.arange(len(PASCAL_CONTEXT_IDS))
    return lut


def _mat_labels(source: Source, out: Path, progress: bool) -> None:
    """PASCAL-Context's own .mat labels ('LabelMap', 459 classes): the rest is background."""
    lut = _context_lut(others=0)
    for member in _members(source, progress, "PASCAL-Context labels"):
        if member.name.endswith(".mat"):
            where = f"{source.path}:{member.name}"
            data = archives.read_member(member, source.path)
            ids = archives.read_mat_variable(data, "LabelMap", source=where)
            if ids.size and (ids.min() < 0 or ids.max() >= len(lut)):
                raise SegvitError(f"{where}: class ids outside PASCAL-Context's 0..459")
            _save_png(lut[ids].astype(np.uint8), out / f"{Path(member.name).stem}.png")


def detail_index(items: list[dict], keep: Callable[[dict], bool]) -> list[dict]:
    """The items the Detail API indexes when it filters `items` by `keep`.

    The API removes unwanted entries from the list it is iterating over, so the entry right
    after each removed one is skipped, neither removed nor indexed. mmsegmentation's
    PASCAL-Context labels and split lists (4,996 / 5,104 images) are what that yields, so the
    same walk is reproduced here to build the same tree.
    """
    remaining, kept, position = list(items), [], 0
    while position < len(remaining):
        if keep(remaining[position]):
            kept.append(remaining[position])
        else:
            del remaining[position]  # the next entry slides into this slot and is stepped over
        position += 1
    return kept


def _detail_labels(path: Path, out: Path, progress: bool) -> dict[str, set[str]]:
    """Labels and splits from the Detail API's trainval_merged.json (RLE masks, 459-class ids)."""
    try:
        data = json.loads(path.read_bytes())
        images, annotations = data["images"], data["annos_segmentation"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SegvitError(
            f"{path}: not the Detail API's trainval_merged.json ({type(err).__name__}: {err})"
        ) from None
    lut, splits = _context_lut(others=-1), {}
    for phase in ("train", "val"):
        kept = detail_index(images, lambda image, p=phase: image.get("phase") == p)
        ids = {image["image_id"] for image in kept}
        by_image: dict[object, list[dict]] = {image_id: [] for image_id in ids}
        for annotation in detail_index(annotations, lambda a, ids=ids: a.get("image_id") in ids):
            by_image[annotation["image_id"]].append(annotation)
        for image in tqdm(kept, desc=f"PASCAL-Context {phase}", disable=None if progress else True):
            stem = Path(image["file_name"]).stem
            label = _paint(image, by_image[image["image_id"]], f"{path}: image {stem}")
            # Ids past the table read as 1 ("accordion"), which is not one of the 59 either.
            mapped = lut[np.where((label >= 0) & (label < len(lut)), label, 1)]
            if (mapped < 0).any():
                bad = np.unique(label[mapped < 0]).tolist()[:5]
                raise SegvitError(f"{path}: image {stem} has class ids {bad} outside the 59")
            _save_png(mapped.astype(np.uint8), out / f"{stem}.png")
        splits[phase] = {Path(image["file_name"]).stem for image in kept}
    return splits


def _paint(image: dict, annotations: list[dict], where: str) -> np.ndarray:
    """(H, W) class ids: each annotation's mask painted in order, later ones on top."""
    height, width = int(image["height"]), int(image["width"])
    label = np.zeros((height, width), np.int64)
    for annotation in annotations:
        segmentation = annotation["segmentation"]
        try:
            mask = archives.decode_rle(segmentation["counts"], height, width)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise SegvitError(f"{where}: unreadable mask ({err})") from None
        label[mask] = annotation["category_id"]
    return label


def _save_png(label: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label).save(path)
