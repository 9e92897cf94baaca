"""Released checkpoints: the registry, fetching, and the converter against every manifest.

The ViT-L files (~1.4 GB each) are checked on names and shapes only (the dry run builds the
segvit model on the meta device); the ViT-B file is written in full and converted bit for
bit; small-width files with the exact key structure of each released structure are run
through the release's own forward pass (release_fakes.reference_predict) for comparison.
"""

import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants

from segvit.engine.checkpoint import save_weights
from segvit.engine.loading import load_checkpoint
from segvit.errors import SegvitError
from segvit.modeling import release
from segvit.modeling.convert import IGNORED, convert_release, dry_run, read_checkpoint
from segvit.modeling.release import (
    RELEASES,
    cached_path,
    fetch,
    get_release,
    hub_url,
    placed_path,
    release_for,
    resolve_cached,
)
from segvit.modeling.variants import build_model

SMALL = dict(width=192, heads=3, crop=64, classes=5)  # segvit's tiny width, a 4x4 token grid


def _where(key: str) -> list[str]:
    """Where a release tensor belongs in segvit, written out independently of the converter's
    rule table: plain name substitutions, stages renumbered from 0, packed q/k/v in three."""
    name = key
    for old, new in [
        ("backbone.patch_embed.projection.", "backbone.vit.patch_embed.proj."),
        ("backbone.pos_embed", "backbone.vit.pos_embed"),
        ("backbone.layers.", "backbone.vit.blocks."), (".ln1.", ".norm1."), (".ln2.", ".norm2."),
        (".attn.attn.in_proj_", ".attn.qkv."), (".attn.attn.out_proj.", ".attn.proj."),
        (".ffn.layers.0.0.", ".mlp.fc1."), (".ffn.layers.1.", ".mlp.fc2."),
        ("decode_head.", "head."), ("multihead_attn.", "cross_attn."), ("out_proj.", "proj."),
        ("linear1.", "ffn.0."), ("linear2.", "ffn.3."),
    ]:  # fmt: skip
        name = name.replace(old, new)
    for stage in range(1, 4):
        name = name.replace(f"input_proj_{stage}.", f"input_proj.{stage - 1}.0.")
        name = name.replace(f"proj_norm_{stage}.", f"input_proj.{stage - 1}.1.")
        name = name.replace(f"decoder_{stage}.", f"decoders.{stage - 1}.")
    if name in ("head.q.weight", "head.atm.q.weight"):
        name = name.replace("q.weight", "queries.weight")
    if name.startswith("head.") and "in_proj_" in name:
        return [name.replace("in_proj_", f"{part}.") for part in "qkv"]
    return [name]


def _assert_lands_exactly(converted, release_tensor, key: str) -> None:
    """Every release tensor equals, bit for bit, what segvit holds where it belongs."""
    if key in IGNORED:
        return
    places = _where(key)
    if key == "backbone.pos_embed":
        expected = [release_tensor[:, 1:]]  # slot 0 is the class token's
    elif len(places) == 3:
        expected = list(release_tensor.chunk(3, dim=0))  # q, k, v stacked on dim 0
    else:
        expected = [release_tensor]
    for place, tensor in zip(places, expected, strict=True):
        assert place in converted, f"{key} -> {place}: no such segvit tensor"
        assert torch.equal(converted[place], tensor), f"{key} -> {place} differs"


# ---------------------------------------------------------------------------- the registry


def test_the_registry_names_the_seven_files():
    assert len(RELEASES) == 7
    ade = get_release("release:ade_51.3")
    assert ade is get_release("ade_51.3.pth")
    assert hub_url(ade) == f"{hub_constants.ENDPOINT}/Akide/SegViTv1/resolve/main/ade_51.3.pth"
    assert (ade.variant, ade.dataset, ade.crop, ade.paper_ss, ade.paper_ms) == (
        "segvit_b", "ade20k", 512, 51.3, 53.0,
    )  # fmt: skip
    assert release_for("segvit_l", "pascal-context", 480).name == "PC59cls_64.1"
    assert release_for("segvit_b", "ade20k", 640) is None
    with pytest.raises(SegvitError, match="unknown released model 'ade_99'.*ade_51.3"):
        get_release("ade_99")
    assert ade.checkpoint == "release:ade_51.3" and get_release(ade.checkpoint) is ade


def test_each_release_crop_is_its_datasets_for_its_vit_size():
    # The release configs: ADE20K 512 (ViT-B) and 640 (ViT-L), COCO-Stuff 512, PASCAL-Context 480.
    assert {r.name: r.crop for r in RELEASES.values()} == {
        "ade_51.3": 512, "ade_shrunk_53.9": 640, "ade_54.6": 640, "COCOstuff10k_shrunk_49.1": 512,
        "COCOstuff_49.9": 512, "PC59cls_62.3": 480, "PC59cls_64.1": 480,
    }  # fmt: skip


# ---------------------------------------------------------------------------- every manifest


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_every_manifest_maps_key_for_key(fakes, name):
    manifest = fakes.read_manifest(name)
    release = RELEASES[name]
    layout, placements = dry_run(manifest.shapes, name)
    assert (layout.variant, layout.crop, layout.num_classes, layout.tiny) == (
        release.variant, release.crop, manifest.classes, False,
    )  # fmt: skip
    sources = {p.source for p in placements}
    assert sources | (set(IGNORED) & set(manifest.shapes)) == set(manifest.shapes)
    with torch.device("meta"):
        model = build_model(release.variant, num_classes=manifest.classes, crop=release.crop)
    assert {p.target for p in placements} == set(model.state_dict())
    assert len(placements) == len(model.state_dict())  # each segvit tensor filled once
    for placement in placements:
        assert placement.target in _where(placement.source)


# ---------------------------------------------------------------------------- bit-exact


def test_the_vit_b_file_converts_bit_exactly_and_predicts(fakes, tmp_path):
    release_state = fakes.fake_state(fakes.read_manifest("ade_51.3"))  # 435 MB
    state, meta = convert_release(fakes.write_release(tmp_path / "ade_51.3.pth", release_state))
    assert meta == {
        "variant": "segvit_b", "num_classes": 150, "crop": 512, "tiny": False,
        "backbone": "", "layers": "", "frozen": False, "patch_size": 16,
        "trained_on": "ade20k", "source": "ade_51.3.pth", "release": "ade_51.3",
        "iteration": 160000,
    }  # fmt: skip
    for key, tensor in release_state.items():
        _assert_lands_exactly(state, tensor, key)
    del release_state
    with torch.device("meta"):  # no random init of 100M weights: they are replaced anyway
        model = build_model("segvit_b", num_classes=150, crop=512)
    model.load_state_dict(state, assign=True)  # strict: every tensor filled, none left over
    scores = model.eval().predict(torch.rand(1, 3, 64, 64))
    assert scores.shape == (1, 150, 64, 64) and torch.isfinite(scores).all()
    assert (scores >= 0).all()  # sums of class probability x mask probability


@pytest.mark.parametrize("name", ["ade_51.3", "ade_shrunk_53.9"])
def test_small_files_predict_as_the_release_does(fakes, tmp_path, name):
    manifest = fakes.shrink(fakes.read_manifest(name), **SMALL)
    release_state = fakes.fake_state(manifest)
    state, meta = convert_release(fakes.write_release(tmp_path / f"{name}.pth", release_state))
    assert (meta["num_classes"], meta["crop"], meta["tiny"]) == (5, 64, True)
    assert "trained_on" not in meta  # 5 classes: no dataset of that size
    for key, tensor in release_state.items():
        _assert_lands_exactly(state, tensor, key)
    model = build_model(meta["variant"], num_classes=5, crop=64, tiny=True)
    model.load_state_dict(state)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ours = model.eval().predict(images)
        theirs = fakes.reference_predict(release_state, images, manifest)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- what is refused


@pytest.fixture
def small_shapes(fakes):
    return dict(fakes.shrink(fakes.read_manifest("ade_51.3"), **SMALL).shapes)


def test_an_extra_key_is_named(small_shapes):
    with pytest.raises(SegvitError, match="f.pth: unexpected key decode_head.conv_seg.weight"):
        dry_run(small_shapes | {"decode_head.conv_seg.weight": (5, 96, 1, 1)}, "f.pth")


def test_a_missing_key_is_named(small_shapes):
    del small_shapes["decode_head.decoder_2.layers.1.linear1.bias"]
    with pytest.raises(SegvitError, match="missing key for segvit's head.decoders.1.layers.1.ffn"):
        dry_run(small_shapes, "f.pth")
    del small_shapes["backbone.patch_embed.projection.weight"]
    with pytest.raises(SegvitError, match="missing key backbone.patch_embed.projection.weight"):
        dry_run(small_shapes, "f.pth")


def test_a_wrong_shape_is_named(small_shapes):
    small_shapes["backbone.layers.3.attn.attn.in_proj_weight"] = (192, 192)
    with pytest.raises(SegvitError, match=r"in_proj_weight has shape \(192, 192\), expected \(576"):
        dry_run(small_shapes, "f.pth")


def test_class_rows_must_agree(small_shapes):
    small_shapes["decode_head.class_embed.weight"] = (9, 96)
    with pytest.raises(SegvitError, match="class_embed.weight has 9 rows, expected 6"):
        dry_run(small_shapes, "f.pth")


def test_files_that_are_not_release_checkpoints(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(SegvitError, match=r"junk.pth: not a readable checkpoint file \(not a"):
        convert_release(junk)
    ours = tmp_path / "ours.pt"
    save_weights(ours, {"head.queries.weight": torch.zeros(2, 2)}, {"variant": "segvit_b"})
    with pytest.raises(SegvitError, match="ours.pt: not an mmsegmentation checkpoint"):
        convert_release(ours)
    with pytest.raises(SegvitError, match="gone.pth: no such checkpoint file"):
        convert_release(tmp_path / "gone.pth")


class _Payload:
    """Unpickling this would create a file: the attack weights_only exists to stop."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').close()",))


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil.pth"
    state = {"backbone.pos_embed": torch.zeros(1), "decode_head.q.weight": torch.zeros(1)}
    torch.save({"state_dict": state, "meta": {"x": _Payload(marker)}}, path)
    with pytest.raises(SegvitError, match="evil.pth: refused to unpickle builtins.exec"):
        convert_release(path)
    with pytest.raises(SegvitError, match="evil.pth: refused to unpickle builtins.exec"):
        load_checkpoint(path)  # the same file reached through `segvit eval`
    assert not marker.exists()


def test_numpy_meta_of_numpy_1_pickles_loads(tmp_path):
    """The release was saved under numpy 1 (`numpy.core.multiarray`); its meta must load."""
    buffer = io.BytesIO()
    meta = {"PALETTE": np.arange(6, dtype=np.uint8).reshape(2, 3), "best": np.float64(0.5)}
    torch.save({"state_dict": {}, "meta": meta}, buffer, _use_new_zipfile_serialization=False)
    path = tmp_path / "old.pth"  # protocol-2 pickles name globals as text lines
    path.write_bytes(buffer.getvalue().replace(b"numpy._core", b"numpy.core"))
    assert b"numpy.core.multiarray" in path.read_bytes()
    loaded = read_checkpoint(path)["meta"]
    assert loaded["PALETTE"].tolist() == [[0, 1, 2], [3, 4, 5]] and loaded["best"] == 0.5


# ---------------------------------------------------------------------------- on the fly


def test_load_checkpoint_converts_release_files_and_names(fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "cache"))
    manifest = fakes.shrink(fakes.read_manifest("ade_51.3"), **SMALL)
    cached = tmp_path / "cache" / "release" / "ade_51.3.pth"
    cached.parent.mkdir(parents=True)
    fakes.write_release(cached, fakes.fake_state(manifest))
    by_name, meta = load_checkpoint("release:ade_51.3")
    by_path, _ = load_checkpoint(cached)
    assert meta["release"] == "ade_51.3" and by_name.meta.variant == "segvit_b"
    assert not by_name.training
    theirs = by_path.state_dict()
    for name, tensor in by_name.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    with pytest.raises(SegvitError) as err:
        load_checkpoint("release:ade_54.6")
    message = str(err.value)
    assert "segvit weights fetch ade_54.6" in message and str(cached.parent) in message
    assert f"{hub_constants.ENDPOINT}/Akide/SegViTv1/resolve/main/ade_54.6.pth" in message
    assert "`hf download Akide/SegViTv1 ade_54.6.pth`" in message


# ---------------------------------------------------------------------------- fetching

PAYLOAD = bytes(range(256)) * 64  # 16 KiB stands in for a checkpoint
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
CACHE = "hub/models--Akide--SegViTv1"  # the standard layout under HF_HOME


@pytest.fixture
def hub(load_by_path, monkeypatch, tmp_path):
    """A stand-in hub on 127.0.0.1 holding ade_51.3.pth, huggingface_hub pointed at it
    through HF_ENDPOINT and HF_HOME (tmp_path/hf); $SEGVIT_WEIGHTS is tmp_path/weights.
    Yields (the hub_server module, the running server)."""
    module = load_by_path("hub_server", Path(__file__).with_name("hub_server.py"))
    # The 16 KiB stand-in passes for the release's file; the real bounds are tested apart.
    monkeypatch.setattr(release, "expected_bytes", lambda r: (len(PAYLOAD) // 2, len(PAYLOAD) * 2))
    with module.serving(monkeypatch, tmp_path, {"ade_51.3.pth": module.HubFile(PAYLOAD)}) as server:
        yield module, server


def _files(server):
    """The file requests the server saw (the library's other calls left out)."""
    return [(m, p.rsplit("/", 1)[1], r) for m, p, r in server.hub.requests if "/resolve/" in p]


def test_fetch_downloads_into_the_hub_cache_checked(hub, tmp_path):
    module, server = hub
    got = fetch("ade_51.3")
    path = got.path
    assert (got.placed, got.checked) == (False, True)
    assert path == tmp_path / "hf" / CACHE / "snapshots" / module.COMMIT / "ade_51.3.pth"
    assert path.read_bytes() == PAYLOAD and path.resolve().name == SHA256  # blob named by SHA
    assert (tmp_path / "hf" / CACHE / "refs" / "main").read_text() == module.COMMIT
    assert resolve_cached("release:ade_51.3") == path and cached_path(RELEASES["ade_51.3"]) == path
    assert fetch("ade_51.3").path == path  # cached: one HEAD, no second GET
    # segvit's HEAD (checked before the library acts on it), the library's HEAD and GET; then
    # cached: segvit's HEAD and the library's, no second GET.
    assert _files(server) == [("HEAD", "ade_51.3.pth", None), ("HEAD", "ade_51.3.pth", None),
                              ("GET", "ade_51.3.pth", None), ("HEAD", "ade_51.3.pth", None),
                              ("HEAD", "ade_51.3.pth", None)]  # fmt: skip


def test_a_dropped_connection_is_resumed_with_a_range_request(hub, monkeypatch):
    module, server = hub
    server.hub.files["ade_51.3.pth"].cut_after = 10_000  # the first GET breaks off there
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # 10 MB: 16 KiB in chunks
    assert fetch("ade_51.3").path.read_bytes() == PAYLOAD
    gets = [r for m, _, r in _files(server) if m == "GET"]
    assert len(gets) == 2 and gets[0] is None
    assert gets[1] == "bytes=9216-"  # the 9 whole chunks written before the cut are kept


def test_a_download_that_keeps_breaking_is_one_line_and_leaves_nothing(hub, monkeypatch, tmp_path):
    _, server = hub
    item = server.hub.files["ade_51.3.pth"]
    item.cut_after, item.cuts = 100, 99  # less than a chunk each time: no progress
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    with pytest.raises(SegvitError) as err:
        fetch("ade_51.3")
    message = str(err.value)
    assert "\n" not in message and "(RemoteProtocolError: peer closed connection" in message
    assert len([m for m, _, _ in _files(server) if m == "GET"]) == 6  # the first and 5 retries
    blobs = tmp_path / "hf" / CACHE / "blobs"
    assert list(blobs.iterdir()) == []  # the partial file is dropped: a new run starts over


def test_the_cache_is_used_offline_and_when_the_hub_is_gone(hub, monkeypatch, tmp_path):
    module, server = hub
    path = fetch("ade_51.3").path
    server.stop()
    assert fetch("ade_51.3").path == path  # unreachable: the library falls back on its cache
    module.point_hub(monkeypatch, endpoint=server.hub.endpoint, home=tmp_path / "hf", offline=True)
    assert fetch("ade_51.3").path == path and resolve_cached("release:ade_51.3") == path
    with pytest.raises(SegvitError) as err:
        fetch("PC59cls_64.1")
    message = str(err.value)
    assert "\n" not in message and "HF_HUB_OFFLINE is set" in message
    assert "`hf download Akide/SegViTv1 PC59cls_64.1.pth`" in message
    assert f"save it as {tmp_path / 'weights' / 'release' / 'PC59cls_64.1.pth'}" in message


def test_an_unreachable_hub_without_a_copy_is_one_line(hub, monkeypatch):
    _, server = hub
    server.stop()
    waits = []  # with no copy to fall back on, the library retries with a backoff first
    monkeypatch.setattr(time, "sleep", waits.append)
    with pytest.raises(SegvitError) as err:
        fetch("ade_51.3")
    assert waits == [1, 2, 4, 8, 8]  # 23 s a user waits (HF_HUB_OFFLINE=1 skips them)
    message = str(err.value)
    assert "\n" not in message and "could not download ade_51.3 (ConnectError" in message
    assert f"{server.hub.endpoint}/Akide/SegViTv1/resolve/main/ade_51.3.pth" in message


def test_a_file_placed_by_hand_is_used_first_and_checked_when_the_hub_answers(hub, tmp_path):
    _, server = hub
    placed = tmp_path / "weights" / "release" / "ade_51.3.pth"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(PAYLOAD)
    got = fetch("ade_51.3")
    assert (got.path, got.placed, got.checked) == (placed, True, True)
    assert _files(server) == [("HEAD", "ade_51.3.pth", None)]  # asked, nothing downloaded
    assert resolve_cached("release:ade_51.3") == placed
    placed.write_bytes(PAYLOAD[:-1])
    with pytest.raises(SegvitError, match=f"{placed}: 16383 bytes, the hub states 16384 for "):
        fetch("ade_51.3")
    placed.write_bytes(PAYLOAD[::-1])
    with pytest.raises(SegvitError) as err:
        fetch("ade_51.3")
    assert f"does not match the {SHA256} the hub states" in str(err.value)
    assert "replace it, or delete it and run `segvit weights fetch ade_51.3`" in str(err.value)
    assert placed.read_bytes() == PAYLOAD[::-1]  # the user's file: reported, not deleted
    server.stop()
    got = fetch("ade_51.3")  # no hub to ask: used as it is
    assert (got.path, got.placed, got.checked) == (placed, True, False)


def test_a_corrupt_download_is_refused_and_removed(hub, tmp_path):
    module, server = hub
    damaged = bytes([PAYLOAD[0] ^ 1]) + PAYLOAD[1:]  # one bit off, the size as stated
    server.hub.files["ade_51.3.pth"] = module.HubFile(damaged, sha256=SHA256)
    with pytest.raises(SegvitError) as err:
        fetch("ade_51.3")
    message = str(err.value)
    assert "\n" not in message and f"does not match the {SHA256} the hub states" in message
    assert list((tmp_path / "hf" / CACHE / "blobs").iterdir()) == []  # nothing kept
    assert not cached_path(RELEASES["ade_51.3"]).is_file()
    server.hub.files["ade_51.3.pth"] = module.HubFile(PAYLOAD)
    assert fetch("ade_51.3").path.read_bytes() == PAYLOAD  # the next fetch starts over


def test_a_cached_file_damaged_later_is_refused(hub):
    path = fetch("ade_51.3").path
    path.resolve().write_bytes(PAYLOAD[::-1])
    with pytest.raises(SegvitError, match="does not match the .* the hub states for ade_51.3"):
        resolve_cached("release:ade_51.3")
    assert not path.exists()


def test_a_damaged_file_in_a_read_only_cache_is_named_for_deletion(hub, monkeypatch):
    blob = fetch("ade_51.3").path.resolve()
    blob.write_bytes(PAYLOAD[::-1])

    def refuse(self, missing_ok=False):  # a shared cache mounted read-only (root ignores modes)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(SegvitError) as err:
        resolve_cached("release:ade_51.3")
    assert (
        f"could not remove it (Permission denied): delete {blob} and run `segvit weights "
        "fetch ade_51.3` again" in str(err.value)
    )


REAL_EXPECTED_BYTES = release.expected_bytes


def test_a_file_far_from_the_releases_size_is_refused_placed_cached_or_stated(
    hub, tmp_path, monkeypatch
):
    _, server = hub
    monkeypatch.setattr(release, "expected_bytes", REAL_EXPECTED_BYTES)
    low, high = REAL_EXPECTED_BYTES(RELEASES["ade_51.3"])
    assert low <= 435 * 10**6 <= high and low <= 435 * 2**20 <= high  # MB or MiB, both fit
    assert REAL_EXPECTED_BYTES(RELEASES["ade_54.6"])[0] > high  # each file its own size
    # A self-consistent 16 KiB file on a mirror: the hub's word is refused before any GET.
    with pytest.raises(SegvitError) as err:
        fetch("ade_51.3")
    message = str(err.value)
    assert "\n" not in message and "ade_51.3.pth has 16,384 bytes" in message
    assert "about 435 MB of tensors" in message and "not the released file" in message
    assert [m for m, _, _ in _files(server)] == ["HEAD"]
    assert not (tmp_path / "hf" / CACHE / "blobs").exists() or not list(
        (tmp_path / "hf" / CACHE / "blobs").iterdir()
    )
    # A hub announcing 60 GB is refused the same way, before downloading a byte.
    monkeypatch.setattr(release, "_hub_metadata", lambda r: (60 * 10**9, SHA256, "a" * 40))
    with pytest.raises(SegvitError, match="ade_51.3.pth has 60,000,000,000 bytes"):
        fetch("ade_51.3")
    # A file placed by hand is checked for its size even with no hub to ask.
    placed = tmp_path / "weights" / "release" / "ade_51.3.pth"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"x" * 5000)
    server.stop()
    with pytest.raises(SegvitError, match=f"{placed}: 5,000 bytes, where ade_51.3.pth holds"):
        fetch("ade_51.3")


@pytest.mark.parametrize("field", ["etag", "commit"])
def test_a_hub_answer_that_would_name_a_path_outside_the_cache_is_refused(
    hub, tmp_path, monkeypatch, field
):
    module, server = hub
    if field == "etag":  # the library would name the blob after it: cache/blobs/../../x
        server.hub.files["ade_51.3.pth"] = module.HubFile(PAYLOAD, sha256="../../../../escaped")
        expected = "no SHA-256 ETag for ade_51.3.pth; refusing to download"
    else:  # the library would name the snapshot folder after it
        monkeypatch.setattr(module, "COMMIT", "../../../../escaped")
        expected = "the revision '../../../../escaped', not a git commit; refusing to download"
    with pytest.raises(SegvitError) as err:
        fetch("ade_51.3")
    assert "\n" not in str(err.value) and expected in str(err.value)
    assert [m for m, _, _ in _files(server)] == ["HEAD"]  # nothing downloaded
    assert sorted(p.name for p in tmp_path.iterdir() if "escaped" in p.name) == []
    assert not any("escaped" in str(p) for p in tmp_path.rglob("*"))


def test_a_file_the_hub_does_not_have_is_a_404_in_one_line(hub):
    _, server = hub
    with pytest.raises(SegvitError) as err:
        fetch("PC59cls_62.3")
    message = str(err.value)
    assert "\n" not in message and "PC59cls_62.3.pth answered HTTP 404" in message
    assert "hf download Akide/SegViTv1 PC59cls_62.3.pth" in message


def test_the_folder_for_files_placed_by_hand_is_in_the_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path))
    assert placed_path(RELEASES["ade_51.3"]) == tmp_path / "release" / "ade_51.3.pth"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RELEASES))
def test_full_size_files_predict_as_the_release_does(fakes, tmp_path, name):
    """Each manifest at its real width, heads and crop (minutes and ~4 GB per ViT-L file)."""
    manifest = fakes.read_manifest(name)
    release_state = fakes.fake_state(manifest)
    state, meta = convert_release(fakes.write_release(tmp_path / f"{name}.pth", release_state))
    with torch.device("meta"):
        model = build_model(meta["variant"], num_classes=meta["num_classes"], crop=meta["crop"])
    model.load_state_dict(state, assign=True)
    images = torch.rand(1, 3, manifest.crop, manifest.crop) * 2 - 1
    with torch.no_grad():
        ours = model.eval().predict(images)
        theirs = fakes.reference_predict(release_state, images, manifest)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-3)
