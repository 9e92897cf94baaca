import io
import tarfile
import zipfile

import numpy as np
import pytest

from segvit.data import archives
from segvit.data.archives import MARKER, PARTIAL, Source
from segvit.errors import SegvitError


@pytest.mark.parametrize("name", ["/etc/passwd", "../up.jpg", "a/../../up.jpg", "C:/x.jpg"])
def test_safe_name_refuses_names_leaving_the_target(tmp_path, name):
    with pytest.raises(SegvitError, match="outside the target folder"):
        archives.safe_name(name, tmp_path / "a.zip")


def test_safe_name_normalises(tmp_path):
    assert archives.safe_name("./images\\x.jpg", tmp_path) == "images/x.jpg"


def test_sources_list_the_same_members(tmp_path, build):
    zipped = build.make_ade_zip(tmp_path / "a.zip", 1, 1)
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "x")
    tarred = tmp_path / "a.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        archive.add(tmp_path / "x" / "ADEChallengeData2016", "ADEChallengeData2016")
    names = {
        kind: sorted(Source(p).names())
        for kind, p in (("zip", zipped), ("tar", tarred), ("dir", tmp_path / "x"))
    }
    assert names["zip"] == names["tar"] == names["dir"]
    assert Source(zipped).kind == "zip" and Source(tarred).kind == "tar"
    member = "ADEChallengeData2016/objectInfo150.txt"
    assert Source(tmp_path / "x").read(member) == Source(zipped).read(member)


def test_tar_links_are_refused(tmp_path):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as archive:
        link = tarfile.TarInfo("VOCdevkit/VOC2010/JPEGImages/a.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(SegvitError, match="a.jpg.*link"):
        Source(path).names()


def test_truncated_and_wrong_archives_are_one_error(tmp_path, build):
    whole = build.make_ade_zip(tmp_path / "a.zip", 2, 1).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SegvitError, match="cut.zip is not a valid .zip or .tar"):
        Source(tmp_path / "cut.zip")
    (tmp_path / "text.zip").write_text("not an archive")
    with pytest.raises(SegvitError, match="text.zip is not a valid"):
        Source(tmp_path / "text.zip")
    tar = tmp_path / "a.tar"
    with tarfile.open(tar, "w") as archive:
        info = tarfile.TarInfo("big.bin")
        info.size = 100_000
        archive.addfile(info, io.BytesIO(bytes(100_000)))
    (tmp_path / "cut.tar").write_bytes(tar.read_bytes()[:50_000])
    with pytest.raises(SegvitError, match="cut.tar is truncated or corrupt"):
        for member in Source(tmp_path / "cut.tar").members():
            archives.write_member(member, tmp_path / "out" / member.name, tmp_path / "cut.tar")


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_mat_reader_round_trip(build, compress, order):
    ids = np.arange(12, dtype=np.uint16).reshape(3, 4) * 20
    other = np.ones((2, 2))
    data = build.mat_bytes(
        {"names": other, "S": ids}, compress=compress, order=order, storage={"S": "uint8"}
    )
    got = archives.read_mat_variable(data, "S", source="x.mat")
    assert got.dtype == np.uint16 and got.shape == (3, 4)
    assert (got == ids).all()  # column-major order and the stored type both undone


def test_mat_reader_errors(build):
    data = build.mat_bytes({"S": np.zeros((2, 2), np.uint8)})
    with pytest.raises(SegvitError, match="x.mat has no variable 'LabelMap'"):
        archives.read_mat_variable(data, "LabelMap", source="x.mat")
    with pytest.raises(SegvitError, match="x.mat is truncated or corrupt"):
        archives.read_mat_variable(data[:-10], "S", source="x.mat")
    with pytest.raises(SegvitError, match="MATLAB 7.3"):
        archives.read_mat_variable(b"MATLAB 7.3 MAT-file".ljust(512, b" "), "S", source="x.mat")
    with pytest.raises(SegvitError, match="not a MATLAB file"):
        archives.read_mat_variable(b"hello", "S", source="x.mat")


def test_rle_round_trip(build):
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) > 0.6
    mask[:, :5] = True  # long runs: multi-chunk values and negative differences
    decoded = archives.decode_rle(build.rle_string(mask), 17, 23)
    assert decoded.dtype == bool and (decoded == mask).all()
    runs = [3, 4, 17 * 23 - 7]  # uncompressed counts
    assert archives.decode_rle(runs, 17, 23).sum() == 4
    with pytest.raises(ValueError, match="expected 17x23"):
        archives.decode_rle([5, 5], 17, 23)


def test_staging_cleans_up_and_locks(tmp_path):
    stale = tmp_path / ".segvit-tmp-ade20k-old"
    stale.mkdir()
    with archives.staging(tmp_path, "ade20k") as scratch:
        assert scratch.is_dir() and not stale.exists()  # a killed run's scratch is removed
        second = archives.staging(tmp_path, "ade20k")
        with pytest.raises(SegvitError, match="another `segvit prepare ade20k` is running"):
            second.__enter__()
        (scratch / "file").write_text("x")
    assert not scratch.exists()


def test_install_renames_or_merges_and_undo_removes_only_what_it_added(tmp_path):
    built = tmp_path / "built"
    (built / "JPEGImages").mkdir(parents=True)
    archives.install(built, tmp_path / "final")
    assert (tmp_path / "final" / "JPEGImages").is_dir() and not built.exists()

    extra = tmp_path / "extra"
    (extra / "SegmentationClassContext").mkdir(parents=True)
    (extra / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (tmp_path / "final" / "ImageSets" / "Main").mkdir(parents=True)
    archives.install(extra, tmp_path / "final")
    final = tmp_path / "final"
    assert (final / PARTIAL).exists()  # the caller finishes after verifying
    assert archives.undo_partial(final)
    assert sorted(p.name for p in final.iterdir()) == ["ImageSets", "JPEGImages"]
    assert [p.name for p in (final / "ImageSets").iterdir()] == ["Main"]
    assert not archives.undo_partial(final)


def test_json_helpers(tmp_path):
    archives.write_json(tmp_path / MARKER, {"a": 1})
    assert archives.read_json(tmp_path / MARKER) == {"a": 1}
    (tmp_path / "bad.json").write_text("{")
    assert archives.read_json(tmp_path / "bad.json") is None
    assert archives.read_json(tmp_path / "missing.json") is None
