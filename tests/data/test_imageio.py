import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from segvit.data import imageio
from segvit.data.imageio import open_image, read_rgb
from segvit.errors import SegvitError


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_rgb_is_read_as_stored_and_writable(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    got = read_rgb(_save(Image.fromarray(pixels), tmp_path / "x.png"))
    assert got.dtype == np.uint8 and got.flags.writeable
    assert np.array_equal(got, pixels)


def test_16_bit_grey_scales_by_1_over_257_rounded(tmp_path):
    wide = np.array([[0, 128, 129, 257], [385, 386, 32896, 65535]], np.uint16)
    path = _save(Image.fromarray(wide), tmp_path / "w.png")
    assert Image.open(path).mode == "I;16"
    expected = np.array([[0, 0, 1, 1], [1, 2, 128, 255]], np.uint8)
    got = read_rgb(path)
    assert got.shape == (2, 4, 3) and (got == expected[..., None]).all()


def test_32_bit_integer_grey_is_kept_when_it_fits_8_bits_else_scaled(tmp_path):
    small = np.array([[0, 7, 255]], np.int32)
    assert (read_rgb(_save(Image.fromarray(small), tmp_path / "s.tif"))[..., 1] == small).all()
    large = np.array([[0, 257, 65535]], np.int32)
    got = read_rgb(_save(Image.fromarray(large), tmp_path / "l.tif"))
    assert got[..., 2].tolist() == [[0, 1, 255]]


def test_palette_images_look_their_colours_up(tmp_path):
    index = np.array([[0, 1, 2], [200, 254, 255]], np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    got = read_rgb(_save(image, tmp_path / "p.png"))
    expected = np.stack([index, 255 - index, np.full_like(index, 7)], axis=2)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_not_composited(tmp_path, mode):
    rgb = np.array([[[10, 20, 30], [200, 100, 50]]], np.uint8)
    alpha = np.array([[0, 128]], np.uint8)
    if mode == "RGBA":
        image, expected = Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), rgb
    else:
        grey = rgb[..., 0]
        image = Image.fromarray(np.dstack([grey, alpha]), "LA")
        expected = np.repeat(grey[..., None], 3, axis=2)
    assert np.array_equal(read_rgb(_save(image, tmp_path / "a.png")), expected)


def test_grey_bilevel_and_cmyk_become_rgb(tmp_path):
    grey = np.array([[0, 90, 255]], np.uint8)
    assert (read_rgb(_save(Image.fromarray(grey), tmp_path / "g.png")) == grey[..., None]).all()
    bits = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    assert read_rgb(_save(bits, tmp_path / "b.png")).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], np.uint8)
    got = read_rgb(_save(Image.fromarray(cmyk, "CMYK"), tmp_path / "c.tif"))
    assert got.tolist() == [[[255, 255, 255], [0, 255, 255], [0, 0, 0]]]  # white, cyan, black


def test_float_images_are_refused(tmp_path):
    path = _save(Image.fromarray(np.zeros((2, 2), np.float32)), tmp_path / "f.tif")
    with pytest.raises(SegvitError, match="f.tif: floating-point images are not supported"):
        read_rgb(path)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_as_pillow_does(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(Image.fromarray(pixels), tmp_path / "x.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    got = read_rgb(path)
    assert got.shape == ((6, 4, 3) if orientation >= 5 else (4, 6, 3))
    assert np.array_equal(got, expected)
    stored, found = imageio.read_stored(path)
    assert found == orientation and np.array_equal(np.asarray(stored), pixels)


def test_exif_rotation_applies_to_16_bit_images_too(tmp_path):
    wide = np.zeros((2, 3), np.uint16)
    wide[0, 0] = 65535  # the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise: the marker goes top-right
    got = read_rgb(_save(Image.fromarray(wide), tmp_path / "w.png", exif=exif))
    assert got.shape == (3, 2, 3) and got[0, 1].tolist() == [255, 255, 255]
    assert got.sum() == 3 * 255


def test_missing_unreadable_and_truncated_files_are_one_line_errors(tmp_path):
    with pytest.raises(SegvitError, match=r"nope.jpg: no such image$"):
        read_rgb(tmp_path / "nope.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 9, np.uint8)).save(buffer, "PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:-40])
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    for name in ("junk.jpg", "cut.png", "cut.jpg"):
        with pytest.raises(SegvitError, match=f"{name}: not a readable image") as caught:
            read_rgb(tmp_path / name)
        assert "\n" not in str(caught.value)
    with (
        pytest.raises(SegvitError, match="nope.png: no such label"),
        open_image(tmp_path / "nope.png", what="label"),
    ):
        pass


def test_images_over_max_pixels_are_refused_before_decoding(tmp_path, monkeypatch):
    noise = np.random.default_rng(0).integers(0, 256, (10, 20, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    whole = (tmp_path / "big.png").write_bytes(buffer.getvalue())
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: whole // 2])  # header intact
    with pytest.raises(SegvitError, match="cut.png: not a readable image"):
        read_rgb(tmp_path / "cut.png")
    monkeypatch.setattr(imageio, "MAX_PIXELS", 199)
    for name in ("big.png", "cut.png"):  # the cut one would fail decoding: it never gets there
        with pytest.raises(SegvitError, match=f"{name}: image of 20x10 = 200 pixels is over the "
                           "limit of 199 "):  # fmt: skip
            read_rgb(tmp_path / name)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 200)
    assert read_rgb(tmp_path / "big.png").shape == (10, 20, 3)


def test_pillow_bomb_limits_give_way_to_max_pixels_and_are_restored(tmp_path, monkeypatch):
    path = _save(Image.fromarray(np.zeros((10, 20, 3), np.uint8)), tmp_path / "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60)  # Pillow alone: an error above 120
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        assert read_rgb(path).shape == (10, 20, 3)
    assert Image.MAX_IMAGE_PIXELS == 60
    assert imageio.MAX_PIXELS == 200_000_000
