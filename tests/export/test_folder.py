"""Model folders: export, load from the folder and from a (local stand-in) hub, same labels."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

import segvit
from segvit.export.folder import CARD, CONFIG, WEIGHTS, export_folder

PHOTO = np.random.default_rng(3).integers(0, 256, (70, 90, 3), np.uint8)


@pytest.fixture
def exported_folder(tiny_checkpoint, tmp_path):
    model = segvit.load(tiny_checkpoint("segvit_shrunk_b"), device="cpu")
    evaluation = {"mIoU": 12.5, "aAcc": 50.0, "mAcc": 20.0, "images": 4}
    folder = export_folder(
        model.network, model.record, model.dataset, tmp_path / "mymodel",
        evaluations={"eval_best_demo_ss": evaluation},
    )  # fmt: skip
    return model, folder


def test_folder_holds_weights_config_and_card(exported_folder):
    model, folder = exported_folder
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS, CONFIG, CARD])
    config = json.loads((folder / CONFIG).read_text())
    assert config["model"] == model.network.meta.to_dict()
    assert config["classes"] == list(model.classes)
    assert config["palette"] == model.palette.tolist()
    assert config["normalization"]["mean"] == [127.5] * 3
    assert config["crop"] == 64 and config["inference"]["stride"] == 42
    assert config["backbone"]["kind"] == "ViTSpec" and config["segvit_version"]
    card = (folder / CARD).read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "| eval_best_demo_ss | 12.50 | 50.00 | 20.00 | 4 |" in card
    with safe_open(str(folder / WEIGHTS), framework="pt") as weights:
        record = json.loads(weights.metadata()["segvit"])
    assert {k: record[k] for k in config["model"]} == config["model"]


def test_folder_loads_back_with_the_same_labels(exported_folder):
    model, folder = exported_folder
    again = segvit.load(folder, device="cpu")
    assert again.classes == model.classes
    assert np.array_equal(again.predict(PHOTO), model.predict(PHOTO))


def test_hub_round_trip_and_offline_rules(exported_folder, load_by_path, monkeypatch, tmp_path):
    model, folder = exported_folder
    hub = load_by_path("hub_server", Path(__file__).parents[1] / "modeling" / "hub_server.py")
    files = {p.name: hub.HubFile(p.read_bytes()) for p in folder.iterdir()}
    expected = model.predict(PHOTO)
    with hub.serving(monkeypatch, tmp_path, files, repo="someone/tiny-segvit") as server:
        fetched = segvit.load("hf:someone/tiny-segvit", device="cpu")
        assert np.array_equal(fetched.predict(PHOTO), expected)
        server.stop()  # no network now: the cache answers
        again = segvit.load("hf:someone/tiny-segvit", device="cpu")
        assert np.array_equal(again.predict(PHOTO), expected)
        with pytest.raises(segvit.SegvitError, match="could not fetch hf:someone/other") as err:
            segvit.load("hf:someone/other", device="cpu")  # no network and no cache
        assert "\n" not in str(err.value)
    with pytest.raises(segvit.SegvitError, match="expected hf:OWNER/NAME"):
        segvit.load("hf:no-owner", device="cpu")
