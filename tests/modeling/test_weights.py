"""Pretrained loading from files the test saves; clear errors for missing or foreign files."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from segvit.errors import SegvitError
from segvit.modeling import weights
from segvit.modeling.specs import SWIN_T, VIT_B, tiny
from segvit.modeling.variants import build_model

SPEC = tiny(VIT_B)


def _reference_vit():
    """A timm-format checkpoint as published: class token, 6x6 grid (96 px), classifier."""
    torch.manual_seed(1)
    return timm.create_model(
        SPEC.timm_name, pretrained=False, img_size=96, embed_dim=192, num_heads=3,
        num_classes=10,
    )  # fmt: skip


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_a_checkpoint_file(tmp_path, suffix):
    reference = _reference_vit()
    state = reference.state_dict()
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)

    model = build_model("segvit_b", num_classes=8, crop=64, tiny=True, pretrained=str(path))
    vit = model.backbone.vit
    torch.testing.assert_close(vit.blocks[3].attn.qkv.weight, state["blocks.3.attn.qkv.weight"])
    torch.testing.assert_close(vit.patch_embed.proj.weight, state["patch_embed.proj.weight"])
    # Position embeddings: class token dropped, 6x6 grid resized bicubically to 4x4 without
    # antialiasing (mmseg's resize), not as timm's resample_abs_pos_embed does by default.
    grid = state["pos_embed"][:, 1:].reshape(1, 6, 6, 192).permute(0, 3, 1, 2)
    resized = {
        antialias: torch.nn.functional.interpolate(
            grid, size=(4, 4), mode="bicubic", antialias=antialias, align_corners=False
        )
        .flatten(2)
        .transpose(1, 2)
        for antialias in (False, True)
    }
    torch.testing.assert_close(vit.pos_embed, resized[False])
    assert (vit.pos_embed - resized[True]).abs().max() > 0.1 * resized[False].abs().max()


def test_weights_of_another_size_are_refused(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict(), path)
    with pytest.raises(SegvitError, match="weights do not fit this ViT"):
        build_model("segvit_b", num_classes=8, crop=64, pretrained=str(path))


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(SegvitError, match="broken.pth: not a readable ViT checkpoint"):
        build_model("segvit_b", num_classes=8, crop=64, tiny=True, pretrained=str(path))


def test_offline_hub_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(weights, "_hub_reachable", lambda: False)
    vit = build_model("segvit_b", num_classes=8, crop=64, tiny=True).backbone.vit
    with pytest.raises(SegvitError) as err:
        weights.load_pretrained(vit, "hub", VIT_B)
    message = str(err.value)
    assert "huggingface.co/timm/vit_base_patch16_384.augreg_in21k_ft_in1k" in message
    assert str(tmp_path / "vit_base_patch16_384.augreg_in21k_ft_in1k.safetensors") in message


def test_failed_download_gives_the_same_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path))
    vit = build_model("segvit_b", num_classes=8, crop=64, tiny=True).backbone.vit
    monkeypatch.setattr(weights, "_hub_reachable", lambda: True)

    def refused(*args, **kwargs):
        raise OSError("403 Forbidden")

    monkeypatch.setattr(weights.timm, "create_model", refused)
    with pytest.raises(SegvitError, match="could not download .*403 Forbidden.*fetch https://"):
        weights.load_pretrained(vit, "hub", VIT_B)


def test_hub_uses_the_cache_folder_first(tmp_path, monkeypatch):
    """A file saved as <weights dir>/<hub name>.<ext> is used without any download."""
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(weights, "_hub_reachable", lambda: pytest.fail("tried the network"))
    state = _reference_vit().state_dict()
    torch.save(state, tmp_path / f"{VIT_B.hub_name}.pth")
    vit = build_model("segvit_b", num_classes=8, crop=64, tiny=True).backbone.vit
    origin = weights.load_pretrained(vit, "hub", VIT_B)
    assert origin == tmp_path / f"{VIT_B.hub_name}.pth"
    torch.testing.assert_close(vit.blocks[0].mlp.fc1.weight, state["blocks.0.mlp.fc1.weight"])


def test_a_non_square_pos_embed_is_a_clear_error(tmp_path):
    state = _reference_vit().state_dict()
    state["pos_embed"] = state["pos_embed"][:, :30]  # class token + 29: no grid
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(SegvitError, match="odd.pth: pos_embed of 30 tokens is no square grid"):
        build_model("segvit_b", num_classes=8, crop=64, tiny=True, pretrained=str(path))


@pytest.mark.parametrize("variant", ["segmenter_b", "dpt_b", "upernet_b"])
def test_class_token_vits_keep_the_class_token_and_its_slot(tmp_path, variant):
    state = _reference_vit().state_dict()
    path = tmp_path / "vit.pth"
    torch.save(state, path)
    model = build_model(variant, num_classes=8, crop=64, tiny=True, pretrained=str(path))
    vit = model.backbone.vit
    torch.testing.assert_close(vit.cls_token, state["cls_token"])
    torch.testing.assert_close(vit.pos_embed[:, :1], state["pos_embed"][:, :1])  # class slot
    assert vit.pos_embed.shape == (1, 1 + 16, 192)  # then the 4x4 grid
    grid = state["pos_embed"][:, 1:].reshape(1, 6, 6, 192).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(
        grid, size=(4, 4), mode="bicubic", align_corners=False
    )
    torch.testing.assert_close(vit.pos_embed[:, 1:], resized.flatten(2).transpose(1, 2))
    torch.testing.assert_close(vit.blocks[1].mlp.fc1.weight, state["blocks.1.mlp.fc1.weight"])
    if variant == "segmenter_b":  # Segmenter keeps the final norm; DPT taps inner layers
        torch.testing.assert_close(vit.norm.weight, state["norm.weight"])


def _reference_swin():
    """A timm Swin checkpoint as published for the tiny Swin spec: 224 input, classifier."""
    spec = tiny(SWIN_T)
    torch.manual_seed(2)
    return timm.create_model(
        spec.timm_name, pretrained=False, embed_dim=spec.embed_dim, depths=spec.depths,
        num_heads=spec.heads, window_size=spec.window, num_classes=10,
    )  # fmt: skip


@pytest.mark.parametrize("variant", ["segvit_swin_t", "maskformer_swin_t"])
def test_swin_rows_load_a_swin_checkpoint_at_another_input_size(tmp_path, variant):
    state = _reference_swin().state_dict()
    path = tmp_path / "swin.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    # 224 keeps every stage at least one 7x7 window (smaller crops shrink the last windows).
    model = build_model(variant, num_classes=8, crop=224, tiny=True, pretrained=str(path))
    swin = model.backbone.swin
    for key in (
        "patch_embed.proj.weight",
        "layers.2.blocks.1.attn.relative_position_bias_table",
        "layers.1.downsample.reduction.weight",
        "layers.3.blocks.0.mlp.fc2.weight",
    ):
        torch.testing.assert_close(swin.state_dict()[key], state[key], msg=key)
    vit_file = tmp_path / "vit.pth"
    torch.save(_reference_vit().state_dict(), vit_file)
    with pytest.raises(SegvitError, match=r"vit.pth: weights do not fit this Swin"):
        build_model(variant, num_classes=8, crop=224, tiny=True, pretrained=str(vit_file))


class _MakesAFolder:
    """A pickle that calls os.makedirs when loaded: the test sees whether it ran."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.folder,))


def test_a_pickle_that_would_run_code_is_named_and_never_run(tmp_path):
    path, ran = tmp_path / "evil.pth", tmp_path / "ran"
    torch.save({"pos_embed": _MakesAFolder(ran)}, path)
    with pytest.raises(SegvitError) as raised:
        build_model("segvit_b", num_classes=8, crop=64, tiny=True, pretrained=str(path))
    message = str(raised.value)
    assert "refused to unpickle os.makedirs" in message and "could run code" in message
    assert "weights_only" not in message and "\n" not in message  # never the unsafe advice
    assert not ran.exists()


def test_a_missing_weights_file_is_said_without_a_malformed_url(tmp_path):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(SegvitError) as raised:  # a tiny ViT has no hub weights to point at
        build_model("segvit_b", num_classes=8, crop=64, tiny=True, pretrained=str(missing))
    assert str(raised.value) == f"--pretrained {missing}: no such weights file"
    with pytest.raises(
        SegvitError,
        match=r"no such weights file; its hub weights are at https://"
        r"huggingface\.co/timm/vit_base_patch16_384\.augreg_in21k_ft_in1k/",
    ):
        build_model("segvit_b", num_classes=8, crop=64, pretrained=str(missing))
