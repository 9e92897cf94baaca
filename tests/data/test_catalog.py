"""A built-in dataset is one catalogue entry: its facts and how `segvit prepare` builds it."""

import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from segvit.cli import main
from segvit.data import archives, catalog
from segvit.data.archives import MARKER
from segvit.data.info import Archive, DatasetSpec, Download, Preparation, Split
from segvit.data.prepare import prepare_dataset, verify_dataset
from segvit.errors import SegvitError
from segvit.fileio import read_json

from .conftest import jpeg_bytes, labels, png_bytes


def build_fake(info, inputs, built, progress):
    """The fake set's builder: its zip holds the tree under a top folder, as many do."""
    for member in inputs.main.members():
        name = member.name.split("/", 1)[-1]
        if name.startswith(("images/", "labels/")):
            archives.write_member(member, built / name, inputs.main.path)
    return built, "fake-zip"


FAKE = DatasetSpec(
    name="fake", classes=("sky", "ground", "tree"),
    train=Split("images/train", "labels/train", count=3),
    val=Split("images/val", "labels/val", count=2),
    crop=32, reduce_zero_label=True, folder="fake/tree",
    preparation=Preparation(
        "fake",
        {"main": Archive(("fake-1.0.zip", "fake-1.0"),
                         Download("http://127.0.0.1:9/fake-1.0.zip", "fake-1.0.zip", None, 0.001),
                         holds="images/train")},
        tree_gb=0.002, build=build_fake,
    ),
)  # fmt: skip


def make_fake_zip(path, counts=(3, 2)):
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in zip(("train", "val"), counts, strict=True):
            for index in range(count):
                stem = f"{split}_{index}"
                archive.writestr(f"fake-1.0/images/{split}/{stem}.jpg", jpeg_bytes(20, 24, index))
                label = png_bytes(labels(20, 24, top=3, seed=index))
                archive.writestr(f"fake-1.0/labels/{split}/{stem}.png", label)
        archive.writestr("fake-1.0/README", "not part of the tree")
    return path


@pytest.fixture
def fake_builtin(monkeypatch):
    """The fake set added as a built-in one: one entry, nothing else."""
    monkeypatch.setitem(catalog.DATASETS, "fake", FAKE)
    return FAKE


def test_a_new_builtin_is_one_entry_prepared_by_the_command(tmp_path, fake_builtin, capsys):
    zipped = make_fake_zip(tmp_path / "fake-1.0.zip")
    root = tmp_path / "data"
    with pytest.raises(SystemExit) as done:
        main(["prepare", "fake", "--src", str(zipped), "--root", str(root)])
    assert done.value.code == 0, capsys.readouterr().err
    tree = root / "fake/tree"
    assert sorted(p.name for p in (tree / "images/train").iterdir()) == [
        "train_0.jpg", "train_1.jpg", "train_2.jpg",
    ]  # fmt: skip
    assert not (tree / "README").exists()
    assert read_json(tree / MARKER) == {
        "dataset": "fake", "route": "fake-zip", "counts": {"train": 3, "val": 2},
    }  # fmt: skip
    verify_dataset(catalog.load_dataset("fake"), root, deep=True)
    # Found under the data root without --src, and the second run adopts the marked tree.
    other = tmp_path / "other"
    (other / "downloads").mkdir(parents=True)
    make_fake_zip(other / "downloads" / "fake-1.0.zip")
    assert prepare_dataset(fake_builtin, root=other, progress=False) == other / "fake/tree"
    assert prepare_dataset(fake_builtin, root=other, progress=False) == other / "fake/tree"


def test_a_builtin_whose_archive_is_missing_says_where_to_get_it(tmp_path, fake_builtin):
    with pytest.raises(SegvitError) as failed:
        prepare_dataset(fake_builtin, root=tmp_path / "data", progress=False)
    text = str(failed.value)
    assert "cannot download fake" in text
    assert "Download http://127.0.0.1:9/fake-1.0.zip (about 0.001 GB) yourself" in text


def test_a_wrong_count_is_refused_and_nothing_is_left(tmp_path, fake_builtin):
    zipped = make_fake_zip(tmp_path / "fake-1.0.zip", counts=(2, 2))
    with pytest.raises(SegvitError, match="2 train image/label pairs, expected 3 for fake"):
        prepare_dataset(fake_builtin, src=zipped, root=tmp_path / "data", progress=False)
    assert not (tmp_path / "data/fake").exists()


def test_the_preparation_facts_round_trip_through_a_record():
    for spec in (*catalog.DATASETS.values(), FAKE):
        back = DatasetSpec.from_record(spec.to_record())
        assert back == spec
        assert asdict(back.preparation) == asdict(spec.preparation) | {
            "build": None, "generate": None,
        }  # fmt: skip
        assert (back.prepare, back.disk_gb, back.generated) == (
            spec.prepare, spec.disk_gb, spec.generated,
        )  # fmt: skip
    back = DatasetSpec.from_record(FAKE.to_record())
    with pytest.raises(SegvitError, match="read from a record; prepare it by name"):
        prepare_dataset(back, root=Path("unused"))


def test_records_before_the_preparation_record_still_say_how_to_get_the_data():
    old = DatasetSpec.from_record(
        '{"name": "ade20k", "classes": ["wall"], "crop": 512, "prepare": "ade20k",'
        ' "disk_gb": [0.92, 1.0], "train": {"images": "i", "labels": "l"},'
        ' "val": {"images": "i", "labels": "l"}}'
    )
    assert old.how_to_get() == "run `segvit prepare ade20k`"


def test_the_plan_figures_come_from_the_archives():
    ade, context, demo = (catalog.DATASETS[n] for n in ("ade20k", "pascal-context", "demo"))
    assert ade.disk_gb == (0.92, 1.0)
    assert context.disk_gb == (1.3, 1.4)  # the Detail JSON has no published size
    assert demo.disk_gb == (0.0, 0.01) and demo.generated and not ade.generated
    assert context.preparation.describe_downloads() == (
        "VOCtrainval_03-May-2010.tar, about 1.3 GB; "
        "trainval_merged.json, the PASCAL-Context labels of the Detail API"
    )
    assert demo.preparation.describe_downloads() == "generated by segvit"
    assert catalog.DATASETS["pascal-context-59"].preparation is context.preparation
    assert np.isclose(ade.preparation.archives_gb, 0.92)
