"""`prepare folder` on a user's own data: the options come back field by field, everything is
checked before anything is written, a differing dataset file is never replaced unasked, and
data that would be dropped or misread (sub-folders, one stem twice, JPEG masks) is one line."""

import dataclasses

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segvit.data.dataset_file import read_dataset_file
from segvit.data.folder import prepare_folder
from segvit.errors import SegvitError
from segvit.experiments.config import load_table


def _folder(root, n=6, top=2, mask_dir="mask", suffix=".png", image_ext=".jpg"):
    images, masks = root / "img", root / mask_dir
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (20, 12), (i * 30, 0, 0)).save(images / f"p{i}{image_ext}")
        Image.fromarray(np.full((12, 20), i % (top + 1), np.uint8)).save(masks / f"p{i}{suffix}")
    return images, masks


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 16).map(lambda n: 16 * n), st.booleans(), st.integers(200, 255),
       st.sampled_from([".png", "_mask.png"]))  # fmt: skip
def test_the_options_come_back_from_the_written_file(tmp_path_factory, crop, reduce, ignore, sfx):
    root = tmp_path_factory.mktemp("f")
    images, masks = _folder(root, n=6, top=3, suffix=sfx)
    path = prepare_folder(images, masks, root / "out", crop=crop, reduce_zero_label=reduce,
                          ignore_index=ignore, label_suffix=sfx, val_fraction=0.34,
                          progress=False)  # fmt: skip
    spec = read_dataset_file(path)
    assert (spec.crop, spec.reduce_zero_label, spec.ignore_index) == (crop, reduce, ignore)
    assert spec.train.label_suffix == spec.val.label_suffix == sfx
    assert (spec.train.count, spec.val.count) == (4, 2)
    # Ids 0..3 found: four classes, or three (1..3) when 0 is "unlabelled".
    assert spec.classes == (("0", "1", "2") if reduce else ("0", "1", "2", "3"))


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(crop=8), r"--crop: 8: expected at least 16"),
        (dict(crop=0), r"--crop: 0: expected at least 16"),
        (dict(crop=2**20), r"--crop: 1048576: expected at most 4096"),
        (dict(ignore_index=-1), r"--ignore-index: -1: expected 0 to 255"),
        (dict(ignore_index=300), r"--ignore-index: 300: expected 0 to 255"),
        (dict(ignore_index=0), r"--ignore-index: 0 is a class id \(classes use 0..2\)"),
    ],
)
def test_a_bad_option_writes_nothing(tmp_path, option, message):
    images, masks = _folder(tmp_path)
    with pytest.raises(SegvitError, match=message):
        prepare_folder(images, masks, tmp_path / "out", progress=False, **option)
    assert not (tmp_path / "out").exists()


def test_a_rerun_never_replaces_a_differing_dataset_file_unasked(tmp_path):
    images, masks = _folder(tmp_path)
    out = tmp_path / "out"
    path = prepare_folder(images, masks, out, progress=False)
    lists = {p: p.read_text() for p in out.glob("*.txt")}
    assert prepare_folder(images, masks, out, progress=False) == path  # the same: fine
    edited = path.read_text().replace("crop: 512", "crop: 256")
    path.write_text(edited)
    with pytest.raises(SegvitError, match=r"dataset.yaml exists and differs .* --overwrite"):
        prepare_folder(images, masks, out, seed=5, progress=False)
    assert path.read_text() == edited and {p: p.read_text() for p in lists} == lists
    prepare_folder(images, masks, out, seed=5, overwrite=True, progress=False)
    assert read_dataset_file(path).crop == 512


def test_images_in_a_sub_folder_are_not_silently_left_out(tmp_path):
    images, masks = _folder(tmp_path)
    (images / "more").mkdir()
    Image.new("RGB", (20, 12)).save(images / "more" / "q.jpg")
    with pytest.raises(SegvitError, match=r"sub-folder more/ holds images, which would be left"):
        prepare_folder(images, masks, tmp_path / "out", progress=False)


def test_two_images_of_one_stem_are_named(tmp_path):
    images, masks = _folder(tmp_path)
    Image.new("RGB", (20, 12)).save(images / "p3.png")
    with pytest.raises(SegvitError, match=r"p3.jpg and p3.png share one stem"):
        prepare_folder(images, masks, tmp_path / "out", progress=False)


def test_upper_case_png_masks_are_found(tmp_path):
    images, masks = _folder(tmp_path, suffix=".PNG")
    spec = read_dataset_file(prepare_folder(images, masks, tmp_path / "out", progress=False))
    assert spec.train.label_suffix == ".PNG" and spec.train.count + spec.val.count == 6


def test_jpeg_masks_are_refused_with_use_png(tmp_path):
    images, masks = _folder(tmp_path, suffix=".jpg")
    with pytest.raises(SegvitError, match=r"p0.jpg is a JPEG; masks must be PNG .*use PNG"):
        prepare_folder(images, masks, tmp_path / "out", progress=False)


def test_images_and_masks_in_one_folder_pair_by_the_suffix(tmp_path):
    images, _ = _folder(tmp_path, mask_dir="img", suffix="_mask.png", image_ext=".png")
    spec = read_dataset_file(
        prepare_folder(images, images, tmp_path / "out", label_suffix="_mask.png", progress=False)
    )
    assert spec.train.count + spec.val.count == 6 and spec.classes == ("0", "1", "2")


@pytest.mark.parametrize(
    "content, message",
    [
        ("\n".join(f"c{i}" for i in range(300)).encode(), r"--classes: 300 classes; at most 255"),
        ("café\nthé\n".encode("latin-1"), r"classes.txt: not UTF-8 text \(byte 3\)"),
        (b"a\nb\na\n", r"--classes: 'a' is named twice"),
        (b"\n\n", r"--classes: no class names"),
    ],
)
def test_a_bad_class_file_is_one_line(tmp_path, content, message):
    images, masks = _folder(tmp_path)
    (tmp_path / "classes.txt").write_bytes(content)
    with pytest.raises(SegvitError, match=message):
        prepare_folder(images, masks, tmp_path / "out", classes=tmp_path / "classes.txt",
                       progress=False)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_too_many_numbered_classes_are_refused_as_a_file_would_be(tmp_path):
    images, masks = _folder(tmp_path, n=2)
    Image.fromarray(np.full((12, 20), 255, np.uint8)).save(masks / "p0.png")
    with pytest.raises(SegvitError, match=r"^the classes numbered from the label ids: 256 "
                                          r"classes; at most 255"):  # fmt: skip
        prepare_folder(images, masks, tmp_path / "out", ignore_index=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_an_out_folder_that_cannot_name_a_dataset_blames_out(tmp_path):
    images, masks = _folder(tmp_path)
    with pytest.raises(SegvitError, match=r"^--out .*my data \(the dataset's name\): 'my data'"):
        prepare_folder(images, masks, tmp_path / "my data", progress=False)


def test_the_same_record_as_a_dataset_file(tmp_path):
    """prepare folder's spec is the dataset-file reader's spec of the file it wrote."""
    images, masks = _folder(tmp_path)
    (tmp_path / "classes.txt").write_text("sky\ntree\nroad\n")
    path = prepare_folder(images, masks, tmp_path / "out", classes=tmp_path / "classes.txt",
                          crop=128, progress=False)  # fmt: skip
    written = yaml.safe_load(path.read_text())
    assert written["classes"] == ["sky", "tree", "road"] and written["crop"] == 128
    spec = read_dataset_file(path)
    assert dataclasses.replace(spec, source=None).classes == ("sky", "tree", "road")


# ---------------------------------------------------------------- YAML files of any kind


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    bomb += [f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
             for p, c in zip("abcdefgh", "bcdefghi", strict=True)]  # fmt: skip
    path = tmp_path / "table1.yaml"
    path.write_text("\n".join(bomb) + "\n")
    with pytest.raises(SegvitError, match=r"table1.yaml: line 2: an alias \(\*name\)"):
        load_table(path)


def test_a_non_utf8_dataset_file_is_one_line(tmp_path):
    path = tmp_path / "dataset.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(SegvitError, match=r"dataset.yaml: not UTF-8 text"):
        read_dataset_file(path)


def _table(tmp_path, stem="table1", table="table1", **row):
    path = tmp_path / f"{stem}.yaml"
    row = {"name": "r", "variant": None, "dataset": "ade20k"} | row
    path.write_text(yaml.safe_dump({"table": table, "caption": "c", "metrics": ["miou_ss"],
                                    "rows": [row]}))  # fmt: skip
    return path


def test_a_table_whose_name_differs_from_its_file_is_refused(tmp_path):
    with pytest.raises(SegvitError, match=r"table: 'table2' differs from the file's name"):
        load_table(_table(tmp_path, table="table2"))


@pytest.mark.parametrize("value", ["1.0e+400", "-1.0e+400", ".inf", ".nan"])
def test_a_paper_value_past_a_float_is_refused(tmp_path, value):
    path = _table(tmp_path, paper={"miou_ss": 1.0})
    path.write_text(path.read_text().replace("miou_ss: 1.0", f"miou_ss: {value}"))
    with pytest.raises(SegvitError, match=r"paper.miou_ss: .*expected a finite number"):
        load_table(path)


def test_a_paper_value_1e400_written_as_text_is_refused(tmp_path):
    path = _table(tmp_path, paper={"miou_ss": "1e400"})
    with pytest.raises(SegvitError, match=r"paper.miou_ss: '1e400': expected a number"):
        load_table(path)


@pytest.mark.parametrize("crop", [2**20, 10**12])
def test_a_huge_crop_in_an_experiment_file_is_one_line(tmp_path, crop):
    with pytest.raises(SegvitError, match=rf"crop: {crop}: expected at most 4096"):
        load_table(_table(tmp_path, crop=crop))


def test_a_row_named_in_japanese_gets_its_own_folder(tmp_path):
    path = _table(tmp_path, name="日本語")
    (row,) = load_table(path).rows
    assert row.slug.startswith("row-") and len(row.slug) > 4


# ---------------------------------------------------------------- colour masks


def _colour_folder(root, colours, n=4):
    images, masks = root / "img", root / "mask"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        Image.new("RGB", (8, 6)).save(images / f"c{i}.jpg")
        rgb = np.zeros((6, 8, 3), np.uint8)
        rgb[:3] = colours[i % len(colours)]
        rgb[3:] = colours[(i + 1) % len(colours)]
        Image.fromarray(rgb).save(masks / f"c{i}.png")
    return images, masks


def test_rgb_colour_masks_become_id_masks_by_the_colour_file(tmp_path):
    colours = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (255, 255, 255)]
    images, masks = _colour_folder(tmp_path, colours)
    (tmp_path / "colours.txt").write_text("0 0 0\n128,0,0\n#008000\n255 255 255 ignore\n")
    path = prepare_folder(images, masks, tmp_path / "out", colors=tmp_path / "colours.txt",
                          val_fraction=0.25, progress=False)  # fmt: skip
    spec = read_dataset_file(path)
    assert spec.classes == ("0", "1", "2") and spec.palette == tuple(colours[:3])
    for i in range(4):
        ids = np.asarray(Image.open(tmp_path / "out" / "labels" / f"c{i}.png"))
        want = [0, 1, 2, 255][i % 4], [0, 1, 2, 255][(i + 1) % 4]
        assert (ids[:3] == want[0]).all() and (ids[3:] == want[1]).all()
    assert not list(tmp_path.glob("out/.labels-*")) and not list(tmp_path.glob(".labels-*"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 0 0\n", r"c\d.png: colour \(128, 0, 0\) is not in --colors"),
        ("0 0 0\n128 0 0\n0 0 0\n", r"line 3: \(0, 0, 0\) is listed twice"),
        ("0 0 0\n128 0\n", r"line 2: '128 0': expected R G B \(0..255\) or #rrggbb"),
        ("#zzzzzz\n", r"line 1: '#zzzzzz': expected R G B"),
    ],
)
def test_a_bad_colour_file_or_an_unlisted_colour_is_one_line(tmp_path, text, message):
    images, masks = _colour_folder(tmp_path, [(0, 0, 0), (128, 0, 0)])
    (tmp_path / "colours.txt").write_text(text)
    with pytest.raises(SegvitError, match=message):
        prepare_folder(images, masks, tmp_path / "out", colors=tmp_path / "colours.txt",
                       progress=False)  # fmt: skip
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".labels-*"))


def test_a_colour_file_of_another_length_than_the_classes_is_refused(tmp_path):
    images, masks = _colour_folder(tmp_path, [(0, 0, 0), (128, 0, 0)])
    (tmp_path / "colours.txt").write_text("0 0 0\n128 0 0\n")
    (tmp_path / "classes.txt").write_text("sky\ntree\nroad\n")
    with pytest.raises(SegvitError, match=r"palette: 2 colours for 3 classes"):
        prepare_folder(images, masks, tmp_path / "out", colors=tmp_path / "colours.txt",
                       classes=tmp_path / "classes.txt", progress=False)  # fmt: skip
