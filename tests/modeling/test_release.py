"""Released checkpoints: the registry, fetching, and the converter against every manifest.

The ViT-L files (~1.4 GB each) are checked on names and shapes only (the dry run builds the
segvit model on the meta device); the ViT-B file is written in full and converted bit for
bit; small-width files with the exact key structure of each released structure are run
through the release's own forward pass (release_fakes.reference_predict) for comparison.
"""

import dataclasses
import io
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from segvit.engine.checkpoint import save_weights
from segvit.engine.loading import load_checkpoint
from segvit.errors import SegvitError
from segvit.modeling import release as release_module
from segvit.modeling.convert import IGNORED, convert_release, dry_run, read_checkpoint
from segvit.modeling.release import RELEASES, fetch, get_release, release_for
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
    assert ade.url == "https://huggingface.co/Akide/SegViTv1/resolve/main/ade_51.3.pth"
    assert (ade.variant, ade.dataset, ade.crop, ade.paper_ss, ade.paper_ms) == (
        "segvit_b", "ade20k", 512, 51.3, 53.0,
    )  # fmt: skip
    assert release_for("segvit_l", "pascal-context", 480).name == "PC59cls_64.1"
    assert release_for("segvit_b", "ade20k", 640) is None
    assert all(r.sha256 is None and r.size is None for r in RELEASES.values())  # not known
    with pytest.raises(SegvitError, match="unknown released model 'ade_99'.*ade_51.3"):
        get_release("ade_99")


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
    with pytest.raises(SegvitError, match=r"junk.pth: not a readable checkpoint \(Unsupported"):
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
    assert "https://huggingface.co/Akide/SegViTv1/resolve/main/ade_54.6.pth" in message


# ---------------------------------------------------------------------------- fetching

PAYLOAD = bytes(range(256)) * 64  # 16 KiB stands in for a checkpoint


class _Opener:
    """urlopen's stand-in: serves PAYLOAD, honours Range, records the requests."""

    def __init__(self):
        self.ranges = []

    def __call__(self, request, timeout=None):
        header = request.get_header("Range")
        self.ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        response = io.BytesIO(PAYLOAD[start:])
        response.status = 206 if start else 200
        response.headers = {"Content-Length": str(len(PAYLOAD) - start)}
        return response


def _published(monkeypatch, **known):
    entry = dataclasses.replace(RELEASES["ade_51.3"], **known)
    monkeypatch.setitem(RELEASES, "ade_51.3", entry)


def test_fetch_resumes_a_partial_file_and_checks_size_and_digest(tmp_path, monkeypatch):
    import hashlib

    opener = _Opener()
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    _published(monkeypatch, size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest())
    (tmp_path / "ade_51.3.pth.part").write_bytes(PAYLOAD[:5000])
    path = fetch("ade_51.3", tmp_path, progress=False)
    assert path == tmp_path / "ade_51.3.pth" and path.read_bytes() == PAYLOAD
    assert opener.ranges == ["bytes=5000-"] and not (tmp_path / "ade_51.3.pth.part").exists()
    assert fetch("ade_51.3", tmp_path, progress=False) == path  # cached: checked, not fetched
    assert opener.ranges == ["bytes=5000-"]


@pytest.mark.parametrize(
    "known, message",
    [
        ({"sha256": "0" * 64}, "SHA-256 .* does not match"),
        ({"size": 7}, "the published file has 7"),
    ],
)
def test_fetch_removes_a_file_that_fails_its_check(tmp_path, monkeypatch, known, message):
    monkeypatch.setattr(urllib.request, "urlopen", _Opener())
    _published(monkeypatch, **known)
    with pytest.raises(SegvitError, match=message):
        fetch("ade_51.3", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_offline_says_which_url_and_where(tmp_path, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SegvitError) as err:
        fetch("PC59cls_64.1", tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message and "Name or service not known" in message
    assert "https://huggingface.co/Akide/SegViTv1/resolve/main/PC59cls_64.1.pth" in message
    assert f"save it as {tmp_path / 'PC59cls_64.1.pth'}" in message


def test_the_cache_is_the_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path))
    assert release_module.release_dir() == tmp_path / "release"


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
