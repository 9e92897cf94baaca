"""ModelMeta as a weights file keeps it: plain values, read back field by field."""

import pytest

from segvit.engine.checkpoint import load_weights, save_weights
from segvit.engine.loading import load_checkpoint, recorded_norm
from segvit.errors import SegvitError
from segvit.modeling.segmentor import ModelMeta
from segvit.modeling.specs import AUGREG_NORM, Normalization
from segvit.modeling.variants import build_model


def test_a_backbone_checkpoint_records_and_rebuilds_its_model(tmp_path):
    name = "vit_small_patch14_reg4_dinov2.lvd142m"
    model = build_model(
        "segvit_shrunk", num_classes=4, crop=56, tiny=True, backbone=name, layers=(3, 9)
    )
    model.freeze_backbone()
    path = tmp_path / "w.pt"
    save_weights(path, model.state_dict(), model.meta.to_dict())
    _, meta = load_weights(path)
    assert meta["variant"] == "segvit_shrunk" and meta["num_classes"] == 4 and meta["crop"] == 56
    assert meta["tiny"] is True and meta["frozen"] is True and meta["patch_size"] == 14
    assert meta["backbone"] == "vit_small_patch14_reg4_dinov2.lvd142m"
    assert meta["layers"] == "3,9"
    assert meta["norm_mean"] == "123.675,116.28,103.53"
    assert meta["norm_std"] == "58.395,57.12,57.375"
    again, _ = load_checkpoint(path)
    assert again.meta == model.meta
    assert again.backbone.out_indices == (3, 9) and again.norm == model.norm
    assert ModelMeta.from_dict(meta) == model.meta  # to_dict's inverse, field by field


def test_from_dict_reads_old_records_with_defaults_and_refuses_a_missing_field():
    old = {"variant": "segvit_b", "num_classes": 150, "crop": 512, "tiny": False}
    assert ModelMeta.from_dict(old) == ModelMeta("segvit_b", 150, 512, False)
    with pytest.raises(SegvitError, match="w.pt: weights file has no 'num_classes' in its"):
        ModelMeta.from_dict({"variant": "segvit_b", "crop": 512, "tiny": False}, "w.pt")
    with pytest.raises(SegvitError, match=r"w.pt: metadata layers '5,x': expected 5,7,11"):
        ModelMeta.from_dict(old | {"layers": "5,x"}, "w.pt")


def test_files_without_a_norm_were_trained_with_augreg_and_a_bad_one_is_one_line():
    assert recorded_norm({}, "old.pt") == AUGREG_NORM
    odd = {"norm_mean": "1.5,2,3", "norm_std": "4,5,6"}
    assert recorded_norm(odd, "x.pt") == Normalization((1.5, 2.0, 3.0), (4.0, 5.0, 6.0))
    with pytest.raises(SegvitError, match="x.pt: metadata norm_mean"):
        recorded_norm({"norm_mean": "1,2", "norm_std": "4,5,6"}, "x.pt")
