"""`segvit prepare` end to end on tiny archives with the official structure."""

import errno
import hashlib
import socket
import tarfile
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from segvit.cli import main
from segvit.data import archives, prepare
from segvit.data.archives import MARKER, PARTIAL
from segvit.data.catalog import DATASETS
from segvit.data.datasets import SegDataset
from segvit.data.info import Download
from segvit.errors import SegvitError
from segvit.fileio import read_json, write_json

ADE_TREE = "ade/ADEChallengeData2016"


def run(capsys, *argv):
    """(exit code, stdout, stderr) of the installed command's entry point."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _no_leftovers(root):
    assert not list(root.glob(".segvit-tmp-*"))


def _labels(root, name, split):
    info = DATASETS[name]
    dataset = SegDataset(info, root, split)
    return [dataset[i]["label"] for i in range(len(dataset))]


# --- ADE20K ---------------------------------------------------------------------------------


@pytest.fixture
def ade(tmp_path, build, small_counts):
    small_counts("ade20k", 3, 2)
    return build.make_ade_zip(tmp_path / "ADEChallengeData2016.zip", 3, 2)


def test_ade20k_from_the_zip_then_a_rerun_checks_and_skips(tmp_path, ade, capsys):
    root = tmp_path / "data"
    code, out, err = run(capsys, "prepare", "ade20k", "--src", str(ade), "--root", str(root))
    assert code == 0, err
    assert "ready at" in out
    tree = root / ADE_TREE
    assert (
        sorted(p.name for p in (tree / "images/training").iterdir())[0] == "ADE_train_00000001.jpg"
    )
    assert (tree / "annotations/validation/ADE_val_00000002.png").is_file()
    assert (tree / "objectInfo150.txt").is_file()
    marker = read_json(tree / MARKER)
    assert marker["counts"] == {"train": 3, "val": 2}
    labels = _labels(root, "ade20k", "train")
    assert all(set(np.unique(lab)) <= set(range(150)) | {255} for lab in labels)
    _no_leftovers(root)
    stamps = {p: p.stat().st_mtime_ns for p in tree.rglob("*")}
    ade.unlink()  # a second run needs no archive: it checks the tree and returns
    code, _, err = run(capsys, "prepare", "ade20k", "--root", str(root))
    assert code == 0, err
    assert stamps == {p: p.stat().st_mtime_ns for p in tree.rglob("*")}


def test_ade20k_from_the_downloads_folder_and_from_an_extracted_zip(tmp_path, ade):
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    ade.rename(root / "downloads" / ade.name)
    assert prepare.prepare_dataset(DATASETS["ade20k"], root=root, progress=False) == root / ADE_TREE
    with zipfile.ZipFile(root / "downloads" / ade.name) as archive:
        archive.extractall(tmp_path / "unzipped")
    other = tmp_path / "other"
    prepare.prepare_dataset(
        DATASETS["ade20k"], src=tmp_path / "unzipped", root=other, progress=False
    )
    assert read_json(other / ADE_TREE / MARKER)["route"] == "ade-extracted"
    assert len(list((other / ADE_TREE / "images/training").iterdir())) == 3


def test_a_tree_prepared_for_mmsegmentation_is_used_as_is(tmp_path, ade):
    root = tmp_path / "data"
    with zipfile.ZipFile(ade) as archive:
        archive.extractall(root / "ade")
    prepare.prepare_dataset(DATASETS["ade20k"], root=root, progress=False)
    assert read_json(root / ADE_TREE / MARKER)["route"] == "existing"
    (root / ADE_TREE / MARKER).unlink()
    (root / ADE_TREE / "annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(SegvitError, match="exists but is not a complete ade20k tree.*has no label"):
        prepare.prepare_dataset(DATASETS["ade20k"], root=root, progress=False)
    assert (root / ADE_TREE / "images/training/ADE_train_00000002.jpg").exists()  # untouched


def test_an_interrupted_run_leaves_nothing_that_verifies(tmp_path, ade, monkeypatch):
    root = tmp_path / "data"
    real, calls = archives.write_member, []

    def dies_midway(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(archives, "write_member", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_dataset(DATASETS["ade20k"], src=ade, root=root, progress=False)
    assert not (root / ADE_TREE).exists()
    _no_leftovers(root)
    with pytest.raises(SegvitError, match="no ade20k data"):
        prepare.verify_dataset(DATASETS["ade20k"], root)
    monkeypatch.setattr(archives, "write_member", real)
    prepare.prepare_dataset(DATASETS["ade20k"], src=ade, root=root, progress=False)
    prepare.verify_dataset(DATASETS["ade20k"], root, deep=True)


def _odd_images(build):
    """One image per awkward mode, each a .jpg name as in ADE20K."""
    grey = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))
    files = {}
    for index, image in enumerate(
        [
            Image.fromarray(grey, "L"),
            Image.fromarray(np.stack([grey] * 4, axis=2), "RGBA"),
            Image.fromarray(grey, "P"),
            Image.fromarray(grey.astype(np.uint16) * 257),
        ]
    ):
        buffer = __import__("io").BytesIO()
        image.save(buffer, "PNG")
        files[f"ADE_train_{index + 1:08d}.jpg"] = buffer.getvalue()
    return files


def test_grey_rgba_palette_16bit_and_exif_images_are_handled(tmp_path, build, small_counts):
    small_counts("ade20k", 5, 1)
    extra = {
        f"ADEChallengeData2016/images/training/{name}": data
        for name, data in _odd_images(build).items()
    }
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = __import__("io").BytesIO()
    Image.new("RGB", (24, 32)).save(buffer, "JPEG", exif=exif)  # displays as 32 x 24
    extra["ADEChallengeData2016/images/training/ADE_train_00000005.jpg"] = buffer.getvalue()
    label = build.png_bytes(build.labels(24, 32, 150))
    for index in range(5):
        extra[f"ADEChallengeData2016/annotations/training/ADE_train_{index + 1:08d}.png"] = label
    zipped = build.make_ade_zip(tmp_path / "a.zip", 0, 1, extra=extra)
    root = tmp_path / "data"
    prepare.prepare_dataset(DATASETS["ade20k"], src=zipped, root=root, progress=False)
    info = DATASETS["ade20k"]
    dataset = SegDataset(info, root, "train")
    for index in range(5):
        sample = dataset[index]
        assert sample["image"].shape == (24, 32, 3) and sample["label"].shape == (24, 32)


def _replace(zipped, name, data, out):
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info))
        if data is not None:
            dst.writestr(name, data)
    return out


IMG = "ADEChallengeData2016/images/training/ADE_train_00000002.jpg"
LAB = "ADEChallengeData2016/annotations/training/ADE_train_00000002.png"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (LAB, None, r"in .*bad.zip: image images/training/ADE_train_00000002.jpg has no label"),
        (IMG, None, r"label annotations/training/ADE_train_00000002.png has no image"),
        ("ADEChallengeData2016/images/training/ADE_train_00000009.jpg", b"x", "has no label"),
        (
            "extra-pair",
            None,
            r"data/ade/ADEChallengeData2016: 4 train image/label pairs, "
            "expected 3",
        ),
        (LAB, "small", r"ADE_train_00000002.jpg is 32x24 but its label .* is 4x4"),
        (IMG, "cut", r"ADE_train_00000002.jpg: not a readable image"),
        (LAB, "200", r"ADE_train_00000002.png: label ids 200 are outside 0..150"),
        ("../escape.txt", b"x", "refusing .*bad.zip: member '../escape.txt' would be written"),
    ],
)
def test_each_bad_input_is_one_clear_error(tmp_path, build, ade, capsys, name, data, message):
    if name == "extra-pair":
        extra = {
            IMG.replace("02.jpg", "09.jpg"): build.jpeg_bytes(24, 32),
            LAB.replace("02.png", "09.png"): build.png_bytes(build.labels(24, 32, 150)),
        }
        bad = build.make_ade_zip(tmp_path / "bad.zip", 3, 2, extra=extra)
    else:
        payload = {
            "small": build.png_bytes(np.ones((4, 4), np.uint8)),
            "cut": build.jpeg_bytes(24, 32)[:300],
            "200": build.png_bytes(np.full((24, 32), 200, np.uint8)),
        }.get(data, data)
        bad = _replace(ade, name, payload, tmp_path / "bad.zip")
    root = tmp_path / "data"
    code, _, err = run(capsys, "prepare", "ade20k", "--src", str(bad), "--root", str(root))
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert __import__("re").search(message, " ".join(err.split())), err
    assert not (root / ADE_TREE).exists() and not (tmp_path / "escape.txt").exists()
    _no_leftovers(root)


def test_wrong_truncated_archives_a_full_disk_and_an_unwritable_root(tmp_path, ade, monkeypatch):
    root = tmp_path / "data"
    (tmp_path / "wrong.zip").write_text("<html>not found</html>")
    with pytest.raises(SegvitError, match="wrong.zip is not a valid .zip or .tar archive"):
        prepare.prepare_dataset(
            DATASETS["ade20k"], src=tmp_path / "wrong.zip", root=root, progress=False
        )
    (tmp_path / "cut.zip").write_bytes(ade.read_bytes()[:-200])
    with pytest.raises(SegvitError, match="cut.zip is not a valid"):
        prepare.prepare_dataset(
            DATASETS["ade20k"], src=tmp_path / "cut.zip", root=root, progress=False
        )

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(root / "x.jpg"))

    monkeypatch.setattr(archives.shutil, "copyfileobj", full)
    with pytest.raises(SegvitError, match="no space left on the disk of .*data while writing"):
        prepare.prepare_dataset(DATASETS["ade20k"], src=ade, root=root, progress=False)
    assert not (root / ADE_TREE).exists()
    _no_leftovers(root)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SegvitError, match="cannot write to the data root .*a-file/data"):
        prepare.prepare_dataset(DATASETS["ade20k"], src=ade, root=tmp_path / "a-file" / "data")


def _download_from(monkeypatch, item):
    """ADE20K's spec with its archive downloaded from `item` instead."""
    spec = DATASETS["ade20k"]
    archive = replace(spec.preparation.archives["main"], download=item)
    prep = replace(spec.preparation, archives={"main": archive})
    monkeypatch.setitem(DATASETS, "ade20k", replace(spec, preparation=prep))


def test_downloads_when_nothing_is_found_and_says_what_to_do_offline(
    tmp_path, ade, monkeypatch, capsys
):
    sha1 = hashlib.sha1(ade.read_bytes()).hexdigest()
    item = Download(ade.as_uri(), "ADEChallengeData2016.zip", sha1, 1e-6)
    _download_from(monkeypatch, item)
    root = tmp_path / "data"
    prepare.prepare_dataset(DATASETS["ade20k"], root=root, progress=False)
    assert (root / "downloads" / "ADEChallengeData2016.zip").is_file()
    assert (root / ADE_TREE / MARKER).is_file()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ADEChallengeData2016.zip"
    _download_from(monkeypatch, Download(url, item.filename, None, 0.9))
    other = tmp_path / "offline"
    code, _, err = run(capsys, "prepare", "ade20k", "--root", str(other))
    assert code == 1
    text = " ".join(err.split())
    assert f"Download {url} (about 0.9 GB) yourself, put the file(s) in {other}/downloads/" in text
    assert f"then run `segvit prepare ade20k --root {other}` again" in text  # the same root
    (tmp_path / "a-file").write_text("")
    code, _, err = run(capsys, "prepare", "ade20k", "--root", str(tmp_path / "a-file"))
    assert code == 1 and "--root" in err and "a file is there; expected a folder" in err


# --- COCO-Stuff-10K -------------------------------------------------------------------------


def test_coco_stuff_labels_become_171_contiguous_ids(tmp_path, build, small_counts):
    small_counts("coco-stuff-10k", 3, 2)
    ids = np.array([[0, 1, 11, 13], [92, 182, 12, 90]] * 10, np.uint16)[:, :4]
    zipped = build.make_coco_zip(tmp_path / "cocostuff-10k-v1.1.zip", 3, 2, size=ids.shape, ids=ids)
    root = tmp_path / "data"
    tree = prepare.prepare_dataset(
        DATASETS["coco-stuff-10k"], src=zipped, root=root, progress=False
    )
    train, test = build.coco_names(3, 2)
    assert (tree / "images/train2014" / f"{train[0]}.jpg").is_file()
    label_file = tree / "annotations/test2014" / f"{test[1]}_labelTrainIds.png"
    raw = np.asarray(Image.open(label_file))
    # mmsegmentation's ids: COCO-Stuff id -> 1-based rank among the 171 (12 names no class)
    assert raw[:2].tolist() == [[0, 1, 11, 12], [81, 171, 0, 80]]
    reduced = _labels(root, "coco-stuff-10k", "val")[0]
    assert reduced[:2].tolist() == [[255, 0, 10, 11], [80, 170, 255, 79]]
    assert (tree / "imageLists/train.txt").read_text().split() == train
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "unzipped")
    other = prepare.prepare_dataset(
        DATASETS["coco-stuff-10k"], src=tmp_path / "unzipped", root=tmp_path / "b", progress=False
    )
    assert (np.asarray(Image.open(other / label_file.relative_to(tree))) == raw).all()


# --- PASCAL-Context -------------------------------------------------------------------------


def test_detail_index_skips_the_entry_after_each_removed_one():
    items = [{"k": "a"}, {"k": "x"}, {"k": "b"}, {"k": "c"}, {"k": "x"}, {"k": "x"}, {"k": "d"}]
    kept = prepare.detail_index(items, lambda item: item["k"] != "x")
    assert [item["k"] for item in kept] == ["a", "c", "d"]  # b follows a removed x
    assert len(items) == 7  # the caller's list is left alone


def _expected_context(height=20, width=30):
    label = np.zeros((height, width), np.uint8)
    label[:, : width // 2] = 1  # aeroplane
    label[: height // 3] = 59  # wood, painted after
    return label


def test_pascal_context_from_the_voc_tar_and_the_detail_json(tmp_path, build, small_counts, capsys):
    small_counts("pascal-context", 2, 2)
    small_counts("pascal-context-59", 2, 2)
    train, val = build.voc_stems(2, 2)
    src = tmp_path / "src"
    src.mkdir()
    build.make_voc_tar(src / "VOCtrainval_03-May-2010.tar", train, val)
    build.make_detail_json(src / "trainval_merged.json", train, val)
    root = tmp_path / "data"
    code, _, err = run(capsys, "prepare", "pascal-context", "--src", str(src), "--root", str(root))
    assert code == 0, err
    tree = root / "VOCdevkit/VOC2010"
    assert (tree / "ImageSets/SegmentationContext/val.txt").read_text().split() == val
    label = np.asarray(Image.open(tree / f"SegmentationClassContext/{train[0]}.png"))
    assert (label == _expected_context()).all()
    fifty_nine = _labels(root, "pascal-context-59", "val")[0]
    assert fifty_nine[0, 0] == 58 and fifty_nine[-1, 0] == 0 and fifty_nine[-1, -1] == 255
    assert read_json(tree / MARKER)["route"] == "detail-json"
    code, _, err = run(capsys, "prepare", "pascal-context-59", "--root", str(root))
    assert code == 0, err


def test_pascal_context_from_the_mat_tarball(tmp_path, build, small_counts, monkeypatch):
    monkeypatch.setattr(prepare, "MAT_ROUTE_COUNTS", {"train": 2, "val": 1})
    train, val = build.voc_stems(2, 1)
    voc = build.make_voc_tar(tmp_path / "VOCtrainval_03-May-2010.tar", train, val)
    build.make_context_tgz(tmp_path / "trainval.tar.gz", train + val)
    root = tmp_path / "data"
    tree = prepare.prepare_dataset(DATASETS["pascal-context"], src=voc, root=root, progress=False)
    label = np.asarray(Image.open(tree / f"SegmentationClassContext/{val[0]}.png"))
    assert label[0, 0] == 59 and label[5, 0] == 1 and label[5, -1] == 0  # other ids: background
    assert read_json(tree / MARKER)["route"] == "context-mat"
    prepare.verify_dataset(DATASETS["pascal-context"], root, deep=True)


def test_pascal_context_labels_are_added_to_an_extracted_voc_in_place(
    tmp_path, build, small_counts
):
    small_counts("pascal-context", 2, 1)
    train, val = build.voc_stems(2, 1)
    root = tmp_path / "data"
    with tarfile.open(build.make_voc_tar(tmp_path / "voc.tar", train, val)) as archive:
        archive.extractall(root, filter="data")
    tree = root / "VOCdevkit/VOC2010"
    build.make_detail_json(tree / "trainval_merged.json", train, val)  # mmsegmentation's place
    image = tree / f"JPEGImages/{train[0]}.jpg"
    inode = image.stat().st_ino
    prepare.prepare_dataset(DATASETS["pascal-context"], root=root, progress=False)
    assert image.stat().st_ino == inode  # the images stayed where they were
    assert (tree / f"SegmentationClassContext/{val[0]}.png").is_file()
    # An interrupted merge: the next check fails, the next run undoes it and builds again.
    write_json(tree / PARTIAL, ["SegmentationClassContext", "ImageSets/SegmentationContext"])
    (tree / MARKER).unlink()
    with pytest.raises(SegvitError, match="interrupted `segvit prepare` left"):
        prepare.verify_dataset(DATASETS["pascal-context"], root)
    prepare.prepare_dataset(DATASETS["pascal-context"], root=root, progress=False)
    prepare.verify_dataset(DATASETS["pascal-context"], root, deep=True)
    assert not (tree / PARTIAL).exists() and image.stat().st_ino == inode


def test_pascal_context_inputs_missing_from_src_are_named(tmp_path, build):
    train, val = build.voc_stems(1, 1)
    build.make_voc_tar(tmp_path / "VOCtrainval_03-May-2010.tar", train, val)
    with pytest.raises(SegvitError, match="found no trainval_merged.json / .*trainval.tar.gz"):
        prepare.prepare_dataset(DATASETS["pascal-context"], src=tmp_path, root=tmp_path / "d")


# --- Demo -----------------------------------------------------------------------------------


def test_prepare_demo_with_a_preview(tmp_path, small_counts, capsys):
    small_counts("demo", 6, 3)
    root, picture = tmp_path / "data", tmp_path / "results" / "demo.png"
    code, out, err = run(capsys, "prepare", "demo", "--root", str(root), "--preview", str(picture))
    assert code == 0, err
    assert Image.open(picture).format == "PNG"
    assert DATASETS["demo"].root(root) == root / "demo"
    prepare.verify_dataset(DATASETS["demo"], root, deep=True)
