"""Opening image files: the one reader of pixels for datasets, previews and `segvit predict`.

Every image becomes (H, W, 3) uint8 RGB the same way, whatever its mode:
  RGB                 as stored;
  L, 1, P, CMYK       Pillow's conversion to RGB (grey repeated, palette looked up);
  LA, RGBA, PA        the alpha channel is dropped, not composited over a background;
  I;16 (16-bit grey)  scaled to 8 bits by 1/257 rounded (65535 -> 255), repeated to RGB;
  I (32-bit integer)  the same scaling when any value exceeds 255, else taken as 8-bit;
  F (float)           refused: there is no agreed range to map from.
EXIF orientation is read from the file and applied by `upright` with Pillow's own transposes.

Size: an image of more than MAX_PIXELS pixels is refused with one error naming it, before any
pixel is decoded (opening reads only the header). Pillow's own decompression-bomb check (a
warning above 89.5 MP, an error above 179 MP) is switched off while a header is read so that
this limit, and its message, is the only one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from segvit.errors import SegvitError

# 200 megapixels: the largest phone sensors (about 16320x12240) still open; larger is refused.
# An RGB image that size is 600 MB as uint8 and 2.4 GB once normalised to float32.
MAX_PIXELS = 200_000_000

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
# Pillow's limit is a module global: changed only under this lock, and only while a header is
# read, so concurrent readers (prepare checks files on a thread pool) restore it correctly.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def open_image(path: Path, *, what: str = "image") -> Iterator[Image.Image]:
    """The file at `path` opened lazily, its size checked against MAX_PIXELS.

    Any error reading it, inside the `with` block too (a truncated file fails at `load`), is
    one SegvitError naming the file; `what` ("image", "label") says what it should have been.
    """
    try:
        with _PILLOW_LIMIT_LOCK:
            pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit
        with img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise SegvitError(
                    f"{path}: {what} of {width}x{height} = {width * height:,} pixels is over "
                    f"the limit of {MAX_PIXELS:,} (segvit.data.imageio.MAX_PIXELS); downscale it"
                )
            yield img
    except FileNotFoundError:
        raise SegvitError(f"{path}: no such {what}") from None
    except _READ_ERRORS as err:
        raise SegvitError(f"{path}: not a readable {what} ({err})") from None


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag of an opened image, 1 (as stored) when it has none."""
    orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    return orientation if orientation in _UPRIGHT else 1


def read_stored(path: Path) -> tuple[Image.Image, int]:
    """The image at `path` as an RGB PIL image as stored, and its EXIF orientation (1: none).

    For a caller that decides whether to turn it (a label drawn on the stored pixels).
    """
    with open_image(path) as img:
        orientation = exif_orientation(img)
        img.load()
        return _to_rgb(img, path), orientation


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as its EXIF `orientation` says it should be displayed."""
    method = _UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the image at `path`, upright (EXIF orientation applied)."""
    return np.array(upright(*read_stored(path)))  # a writable copy


def _to_rgb(img: Image.Image, path: Path) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):
        wide = np.asarray(img).astype(np.int64)
        scale = 257 if img.mode.startswith("I;16") or wide.max(initial=0) > 255 else 1
        grey = np.clip((wide + scale // 2) // scale, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    if img.mode == "F":
        raise SegvitError(f"{path}: floating-point images are not supported; expected 8-bit")
    return img.convert("RGB")
