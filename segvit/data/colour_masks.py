"""Colour masks (one RGB colour per class, as many public sets ship them) -> id masks.

    segvit prepare folder ... --colors colours.txt

The colour file holds one colour a line, in class order: `R G B` (0..255, commas allowed)
or `#rrggbb`; a line ending in `ignore` names a colour whose pixels are not scored (a void
or boundary colour) instead of a class. Every pixel must have one of the listed colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from segvit.data.dataset_file import read_class_names
from segvit.data.imageio import open_image
from segvit.errors import SegvitError

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Colours:
    classes: tuple[RGB, ...]  # class i's colour
    ignored: tuple[RGB, ...]  # colours whose pixels get the ignore id


def read_colours(path: Path) -> Colours:
    """The colours of a colour file; a bad line is one line naming the file and line."""
    if not Path(path).is_file():
        raise SegvitError(f"--colors {path}: not a file (expected one colour a line)")
    classes: list[RGB] = []
    ignored: list[RGB] = []
    for number, line in enumerate(read_class_names(path), start=1):
        parts = line.replace(",", " ").split()
        target = ignored if parts[-1].lower() == "ignore" else classes
        parts = parts[:-1] if target is ignored else parts
        colour = _colour(parts)
        if colour is None:
            raise SegvitError(
                f"--colors {path}: line {number}: {line!r}: expected R G B (0..255) or "
                "#rrggbb, optionally followed by 'ignore'"
            )
        if colour in classes or colour in ignored:
            raise SegvitError(f"--colors {path}: line {number}: {colour} is listed twice")
        target.append(colour)
    if not classes:
        raise SegvitError(f"--colors {path}: no class colours")
    return Colours(tuple(classes), tuple(ignored))


def _colour(parts: list[str]) -> RGB | None:
    if len(parts) == 1 and len(parts[0]) == 7 and parts[0].startswith("#"):
        try:
            value = int(parts[0][1:], 16)
        except ValueError:
            return None
        return (value >> 16, (value >> 8) & 255, value & 255)
    if len(parts) == 3 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return (int(parts[0]), int(parts[1]), int(parts[2]))
    return None


def to_ids(mask: Path, colours: Colours, ignore_index: int, source: Path) -> np.ndarray:
    """(H, W) uint8 ids of a colour mask; a colour not in `colours` is one line."""
    with open_image(mask, what="label") as img:
        rgb = np.asarray(img.convert("RGB")).astype(np.int32)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (H, W)
    lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(colours.classes)}
    lookup |= {(r << 16) | (g << 8) | b: ignore_index for r, g, b in colours.ignored}
    found, inverse = np.unique(codes, return_inverse=True)
    ids = np.zeros(len(found), np.uint8)
    for j, code in enumerate(found.tolist()):
        if code not in lookup:
            colour = (code >> 16, (code >> 8) & 255, code & 255)
            raise SegvitError(f"{mask}: colour {colour} is not in --colors {source}")
        ids[j] = lookup[code]
    return ids[inverse.reshape(codes.shape)]


def write_id_masks(
    pairs: list[tuple[Path, Path]], colours: Colours, ignore_index: int, source: Path, dest: Path
) -> list[tuple[Path, Path]]:
    """Each colour mask as an id PNG `dest/STEM.png` (STEM the image's); the new pairs."""
    dest.mkdir(parents=True, exist_ok=True)
    converted = []
    for image, mask in pairs:
        ids = Image.fromarray(to_ids(mask, colours, ignore_index, source))
        target = dest / f"{image.stem}.png"
        ids.save(target)  # into a staging folder, renamed into place as a whole
        converted.append((image, target))
    return converted
