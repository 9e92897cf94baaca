"""One refusal for a pickle that would run code, whichever loader meets it; other bad files
are "not readable", with the reason, and no message ever advises `weights_only=False`."""

import os
from pathlib import Path

import pytest
import torch

from segvit.engine import checkpoint as ckpt
from segvit.engine.loading import load_checkpoint
from segvit.errors import SegvitError
from segvit.modeling.convert import read_checkpoint
from segvit.modeling.unpickle import load_torch
from segvit.modeling.variants import build_model


class _MakesAFolder:
    """Unpickling this would create a folder: the attack weights_only exists to stop."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        return (os.makedirs, (self.folder,))


def _pretrained(path: Path) -> None:  # `segvit train --pretrained FILE`
    build_model("segvit_b", num_classes=8, crop=64, tiny=True, pretrained=str(path))


LOADERS = {
    "convert": read_checkpoint,
    "eval/predict": load_checkpoint,
    "weights": ckpt.load_weights,
    "resume": ckpt.load_state,
    "train --pretrained": _pretrained,
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_refuses_a_code_running_pickle_in_one_same_line(tmp_path, loader, legacy):
    path, ran = tmp_path / "evil.pth", tmp_path / "ran"
    content = {"state_dict": {"w": _MakesAFolder(ran)}, "meta": {}, "iteration": 1}
    content["pos_embed"] = content["state_dict"]["w"]
    torch.save(content, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(SegvitError) as raised:
        LOADERS[loader](path)
    assert str(raised.value) == (
        f"{path}: refused to unpickle os.makedirs: loading it could run code (segvit loads "
        "only tensors and plain data)"
    )
    assert not ran.exists()


def _random(path: Path) -> None:
    path.write_bytes(bytes(range(7, 256)) * 20)  # no zip, no pickle


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _cut_zip(path: Path) -> None:
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:300])


def _cut_legacy(path: Path) -> None:
    torch.save({"w": torch.zeros(100)}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:60])


def _plain_pickle(path: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"w": 1}, protocol=4))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_random, "not a torch file: neither a zip archive nor a pickle"),
        (_empty, "the file is empty"),
        (_cut_zip, "a zip archive cut short or damaged"),
        (_cut_legacy, "the file is cut short"),
        (_plain_pickle, "a pickle torch did not write (pickle opcode 149)"),
    ],
)
@pytest.mark.parametrize("loader", LOADERS)
def test_a_file_that_is_no_checkpoint_is_not_called_a_code_running_pickle(
    tmp_path, loader, make, reason
):
    path = tmp_path / "junk.pth"
    make(path)
    with pytest.raises(SegvitError) as raised:
        LOADERS[loader](path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not a readable ") and message.endswith(f"({reason})")
    assert "refused" not in message and "weights_only" not in message and "\n" not in message


def test_allowed_globals_load_and_others_are_still_refused(tmp_path):
    path = tmp_path / "mixed.pt"
    torch.save({"p": Path("a"), "w": torch.ones(2)}, path)  # pathlib.PosixPath: a class
    with pytest.raises(SegvitError, match="refused to unpickle pathlib.PosixPath"):
        load_torch(path, "test file")
    allowed = [type(Path("a"))]
    assert load_torch(path, "test file", allowed=allowed)["w"].tolist() == [1.0, 1.0]
