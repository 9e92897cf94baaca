import io
import tarfile
import zipfile

import numpy as np
import pytest

from segvit.data import archives
from segvit.data.archives import PARTIAL, Source
from segvit.errors import SegvitError


@pytest.mark.parametrize("name", ["/etc/passwd", "../up.jpg", "a/../../up.jpg", "C:/x.jpg"])
def test_safe_name_refuses_names_leaving_the_target(tmp_path, name):
    with pytest.raises(SegvitError, match="outside the target folder"):
        archives.safe_name(name, tmp_path / "a.zip")


def test_safe_name_normalises(tmp_path):
    assert archives.safe_name("./images\\x.jpg", tmp_path) == "images/x.jpg"


def _contents(source: Source) -> dict[str, bytes]:
    return {m.name: archives.read_member(m, source.path) for m in source.members()}


def test_sources_list_the_same_members(tmp_path, build):
    zipped = build.make_ade_zip(tmp_path / "a.zip", 1, 1)
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "x")
    tarred = tmp_path / "a.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        archive.add(tmp_path / "x" / "ADEChallengeData2016", "ADEChallengeData2016")
    contents = {kind: _contents(Source(p)) for kind, p in
                (("zip", zipped), ("tar", tarred), ("dir", tmp_path / "x"))}  # fmt: skip
    assert contents["zip"] == contents["tar"] == contents["dir"]
    assert len(contents["zip"]) == 5  # objectInfo150.txt, 2 images, 2 labels
    assert Source(zipped).kind == "zip" and Source(tarred).kind == "tar"
    assert Source(tmp_path / "x").kind == "dir"


def test_tar_links_are_refused(tmp_path):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as archive:
        link = tarfile.TarInfo("VOCdevkit/VOC2010/JPEGImages/a.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(SegvitError, match="a.jpg.*link"):
        list(Source(path).members())


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
    uncompressed = build.mat_bytes({"S": np.zeros((4, 4), np.uint8)}, compress=False)
    with pytest.raises(SegvitError, match="x.mat is truncated or corrupt"):
        archives.read_mat_variable(uncompressed[:-3], "S", source="x.mat")
    with pytest.raises(SegvitError, match="x.mat is truncated or corrupt"):
        archives.read_mat_variable(data[:128] + b"\xff" * 40, "S", source="x.mat")
    with pytest.raises(SegvitError, match="MATLAB 7.3"):
        archives.read_mat_variable(b"MATLAB 7.3 MAT-file".ljust(512, b" "), "S", source="x.mat")
    with pytest.raises(SegvitError, match="not a MATLAB file"):
        archives.read_mat_variable(b"hello", "S", source="x.mat")


def test_rle_errors():
    assert archives.decode_rle([3, 4, 17 * 23 - 7], 17, 23).sum() == 4
    with pytest.raises(ValueError, match="expected 17x23"):
        archives.decode_rle([5, 5], 17, 23)


# --- Against the reference libraries: scipy.io for MATLAB files, pycocotools for RLE ------


@pytest.mark.parametrize("compress", [True, False])
def test_mat_reader_reads_what_scipy_writes(compress):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    numeric = {
        "S": rng.integers(0, 183, (7, 11)).astype(np.uint8),  # COCO-Stuff's label variable
        "LabelMap": rng.integers(0, 460, (13, 5)).astype(np.uint16),  # PASCAL-Context's
        "depth": rng.random((3, 4)),  # double
        "one": np.array([[42]], np.uint16),  # 2 bytes: a small data element
        "row": np.arange(3, dtype=np.uint8),  # 1-D: MATLAB keeps it as a 1x3 row
        "column": rng.random((9, 1)),
        "cube": rng.integers(0, 9, (2, 3, 4)).astype(np.uint16),
        "empty": np.zeros((0, 3)),
        "signed": rng.integers(-300, 300, (4, 4)).astype(np.int32),
        "a_rather_long_variable_name": np.eye(3),  # over 4 bytes: a full name element
    }
    other = {
        "names": np.array(["wall", "sky"], dtype=object),  # a cell array
        "meta": {"source": "tests", "year": 2014.0},  # a struct
        "title": "labels",  # a char array
        "phase": np.array([[1 + 2j]]),  # complex
    }
    buffer = io.BytesIO()  # the non-numeric variables first: the reader must step over them
    scipy_io.savemat(buffer, {**other, **numeric}, do_compression=compress)
    data = buffer.getvalue()
    reference = scipy_io.loadmat(io.BytesIO(data))
    for key, array in numeric.items():
        got = archives.read_mat_variable(data, key, source="x.mat")
        assert got.dtype == reference[key].dtype == array.dtype, key
        assert got.shape == reference[key].shape == np.atleast_2d(array).shape, key
        assert np.array_equal(got, reference[key]) and np.array_equal(got.ravel(), array.ravel())
    for key in other:
        with pytest.raises(SegvitError, match=f"x.mat: variable '{key}' is not a real numeric"):
            archives.read_mat_variable(data, key, source="x.mat")


@pytest.mark.parametrize("order", ["<", ">"])
def test_the_tests_mat_writer_is_read_alike_by_scipy(build, order):
    """The hand-written files (big-endian, values stored narrower than their class, which
    scipy cannot write) are what the prepare tests use: scipy must read them as we do."""
    scipy_io = pytest.importorskip("scipy.io")
    ids = np.arange(12, dtype=np.uint16).reshape(3, 4) * 20
    data = build.mat_bytes({"names": np.ones((2, 2)), "S": ids}, order=order,
                           storage={"S": "uint8"})  # fmt: skip
    reference = scipy_io.loadmat(io.BytesIO(data), mat_dtype=True)["S"]  # the class, as MATLAB
    assert reference.dtype.newbyteorder("=") == np.uint16 and np.array_equal(reference, ids)
    assert np.array_equal(archives.read_mat_variable(data, "S", source="x.mat"), reference)


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    first = np.zeros((6, 4), bool)
    first[0, 0] = True  # a mask starting with a 1: the first run of 0s is empty
    blocks = np.zeros((300, 400), bool)
    blocks[40:260, 150:] = True  # runs of tens of thousands: many 5-bit groups, big differences
    blocks[:, :3] = True
    return [
        np.zeros((5, 7), bool),
        np.ones((5, 7), bool),
        first,
        rng.random((17, 23)) < 0.4,
        rng.random((50, 1)) < 0.5,
        rng.random((1, 50)) < 0.5,
        blocks,
        np.kron(rng.random((6, 9)) < 0.5, np.ones((11, 7), bool)),
    ]


@pytest.mark.parametrize("index", range(len(_masks())))
def test_rle_decoder_reads_what_pycocotools_encodes(index, build):
    mask_api = pytest.importorskip("pycocotools.mask")
    mask = _masks()[index]
    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    height, width = rle["size"]
    for counts in (rle["counts"], rle["counts"].decode("ascii")):  # the API's bytes, JSON's str
        got = archives.decode_rle(counts, height, width)
        assert got.dtype == bool and np.array_equal(got, mask)
    assert build.rle_string(mask) == rle["counts"].decode("ascii")  # the tests' own encoder


# pycocotools' own decode trips numpy 2's copy-keyword deprecation; not ours to fix.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_rle_decoder_reads_uncompressed_counts_as_pycocotools_does():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    height, width = 19, 13
    cuts = np.sort(rng.choice(np.arange(1, height * width), size=30, replace=False))
    runs = [0, *np.diff([0, *cuts, height * width]).tolist()]  # starts with a 1
    reference = mask_api.decode(mask_api.frPyObjects({"counts": runs, "size": [height, width]},
                                                     height, width))  # fmt: skip
    got = archives.decode_rle(runs, height, width)
    assert reference.sum() > 0 and np.array_equal(got, reference.astype(bool))


def test_staging_cleans_up_and_locks(tmp_path):
    stale = tmp_path / ".segvit-tmp-ade20k-old"
    stale.mkdir()
    with archives.staging(tmp_path, "ade20k") as scratch:
        assert scratch.is_dir() and not stale.exists()  # a killed run's scratch is removed
        second = archives.staging(tmp_path, "ade20k")
        with pytest.raises(SegvitError, match="`segvit prepare ade20k` is already running"):
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
