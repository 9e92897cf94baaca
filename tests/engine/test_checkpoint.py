"""Atomic files, weights-only checkpoints (.pt and .safetensors), RNG capture, resume checks."""

import random

import numpy as np
import pytest
import torch

from segvit.engine import checkpoint as ckpt
from segvit.errors import SegvitError


class Boom(Exception):
    pass


def test_atomic_write_never_leaves_half_a_file(tmp_path):
    path = tmp_path / "f.pt"
    ckpt.atomic_save({"a": torch.arange(3)}, path)

    def crash(file):
        file.write(b"half")
        raise Boom

    with pytest.raises(Boom):
        ckpt.atomic_write(path, crash)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]  # no temporary left behind


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.pt.123.tmp").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"y")
    assert [p.name for p in ckpt.remove_stale_temporaries(tmp_path)] == [".last.pt.123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_weights_round_trip_and_load_with_weights_only(tmp_path):
    state = {"w": torch.randn(2, 3), "b": torch.zeros(3)}
    meta = {"variant": "segvit_b", "num_classes": 150, "mIoU": 0.47, "tiny": False}
    ckpt.save_weights(tmp_path / "w.pt", state, meta)
    raw = torch.load(tmp_path / "w.pt", weights_only=True)
    assert raw["meta"] == meta and torch.equal(raw["state_dict"]["w"], state["w"])
    loaded, loaded_meta = ckpt.load_weights(tmp_path / "w.pt")
    assert loaded_meta == meta and all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(TypeError, match="'crop'"):
        ckpt.save_weights(tmp_path / "x.pt", state, {"crop": (512, 512)})


def test_safetensors_export_keeps_tensors_and_typed_meta(tmp_path):
    base = torch.randn(4, 4)
    state = {"a": base, "a_view": base[:2]}  # shared memory: safetensors needs copies
    meta = {"variant": "v", "iteration": 7, "mIoU": 0.5}
    ckpt.export_safetensors(tmp_path / "w.safetensors", state, meta)
    loaded, loaded_meta = ckpt.load_weights(tmp_path / "w.safetensors")
    assert loaded_meta == meta
    assert torch.equal(loaded["a"], base) and torch.equal(loaded["a_view"], base[:2])


def test_missing_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(SegvitError, match="no such weights file"):
        ckpt.load_weights(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(SegvitError, match="junk.pt: not a readable weights file"):
        ckpt.load_weights(tmp_path / "junk.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(SegvitError, match="expected a segvit weights file"):
        ckpt.load_weights(tmp_path / "plain.pt")
    good = tmp_path / "good.pt"
    ckpt.save_weights(good, {"w": torch.zeros(100)}, {})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(SegvitError, match="cut.pt: not a readable"):
        ckpt.load_weights(tmp_path / "cut.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(SegvitError, match="not a readable safetensors"):
        ckpt.load_weights(tmp_path / "junk.safetensors")
    with pytest.raises(SegvitError, match="no such training state"):
        ckpt.load_state(tmp_path / "absent.state.pt")


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_rng_capture_survives_a_weights_only_file_and_restores_every_generator(tmp_path):
    ckpt.seed_everything(5)
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    ckpt.atomic_save(ckpt.capture_rng(), tmp_path / "rng.pt")
    expected = _draw()
    _draw()
    ckpt.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = _draw()
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])
    with ckpt.preserved_rng():
        _draw()
    after = _draw()
    ckpt.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    _draw()
    again = _draw()
    assert after[:2] == again[:2] and torch.equal(after[2], again[2])


def test_resumable_state_refuses_overwrite_and_mismatch(tmp_path):
    paths = ckpt.CheckpointPaths(tmp_path)
    config = {"lr": 1e-3, "seed": 0}
    assert ckpt.resumable_state(paths, resume=True, config=config, must_match=["lr"]) is None
    ckpt.save_state(paths.state, {"iteration": 4, "config": config})
    with pytest.raises(SegvitError, match="already holds a training state"):
        ckpt.resumable_state(paths, resume=False, config=config, must_match=["lr"])
    with pytest.raises(SegvitError, match="seed was 0, now 1"):
        ckpt.resumable_state(paths, resume=True, config=config | {"seed": 1}, must_match=["seed"])
    state = ckpt.resumable_state(paths, resume=True, config=config, must_match=["lr", "seed"])
    assert state["iteration"] == 4


def test_a_weights_file_whose_pickle_would_run_code_names_what_it_asked_for(tmp_path):
    import os

    class MakesAFolder:
        def __reduce__(self):
            return (os.makedirs, (str(tmp_path / "ran"),))

    torch.save({"state_dict": {"w": MakesAFolder()}, "meta": {}}, tmp_path / "evil.pt")
    with pytest.raises(SegvitError) as raised:
        ckpt.load_weights(tmp_path / "evil.pt")
    assert str(raised.value) == (
        f"{tmp_path / 'evil.pt'}: refused to unpickle os.makedirs: loading it could run code "
        "(segvit loads only tensors and plain data)"
    )
    assert not (tmp_path / "ran").exists()
