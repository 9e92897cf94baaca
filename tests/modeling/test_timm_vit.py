"""The timm-family adapter: tapped maps equal timm's own block outputs, prefix tokens dropped;
inputs padded to the patch and outputs cropped back; pretrained weights the way timm loads
them, from a local file and from a (stand-in) hub."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from segvit.errors import SegvitError
from segvit.modeling.backbone import ViTBackbone
from segvit.modeling.families import FAMILIES
from segvit.modeling.output import SegOutput, pad_labels
from segvit.modeling.timm_vit import backbone_spec, create_timm_vit
from segvit.modeling.variants import build_model
from segvit.modeling.weights import load_timm_pretrained

TIMM_FAMILIES = [f for f in FAMILIES if f.key != "augreg"]
HUB_SERVER = Path(__file__).with_name("hub_server.py")


def tiny_spec(family, **changes):
    """A 4-layer, width-64 instance of the family's example, random weights."""
    spec = backbone_spec(family.example)
    return replace(spec, dim=64, heads=2, depth=4, drop_path=0.0, **changes)


@pytest.mark.parametrize("family", TIMM_FAMILIES, ids=lambda f: f.key)
def test_tapped_maps_are_timms_own_block_outputs_without_prefix_tokens(family):
    torch.manual_seed(0)
    spec = tiny_spec(family)
    crop = 4 * spec.patch_size
    backbone = ViTBackbone(spec=spec, img_size=crop, out_indices=(1, 3)).eval()
    reference = create_timm_vit(spec, crop, pretrained=None).eval()  # the whole model
    reference.load_state_dict(backbone.vit.state_dict(), strict=False)  # its pruned twin's
    assert reference.num_prefix_tokens == family.prefix_tokens
    seen = {}
    for i in (1, 3):
        reference.blocks[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out))
    images = torch.randn(2, 3, crop, crop)
    with torch.no_grad():
        maps = backbone(images)
        reference(images)
    grid = crop // spec.patch_size
    for got, i in zip(maps, (1, 3), strict=True):
        tokens = seen[i][:, family.prefix_tokens :]  # (B, h*w, C)
        expected = tokens.transpose(1, 2).reshape(2, spec.dim, grid, grid)
        assert got.shape == (2, spec.dim, grid, grid)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_each_family_has_its_weights_mean_and_std():
    # timm's pretrained configs, in 0..255: ImageNet for DeiT III, DINOv2/v3, BEiT v2;
    # 0.5/0.5 for AugReg and SigLIP 2; OpenAI CLIP's for EVA-02.
    imagenet = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    half = ((127.5,) * 3, (127.5,) * 3)
    clip = ((122.770938, 116.746013, 104.093736), (68.500533, 66.632158, 70.323163))
    expected = {"augreg": half, "deit3": imagenet, "dinov2": imagenet, "dinov2_reg": imagenet,
                "dinov3": imagenet, "eva02": clip, "beitv2": imagenet, "siglip2": half}  # fmt: skip
    for family in FAMILIES:
        spec = backbone_spec(family.example)
        assert (spec.norm.mean, spec.norm.std) == expected[family.key], family.key
        assert spec.norm == family.norm, family.key  # the listing says what the model does
        assert spec.patch_size == family.patch_size, family.key


@pytest.mark.parametrize(
    "name", ["vit_base_patch14_reg4_dinov2.lvd142m", "beitv2_base_patch16_224"]
)  # noqa: E501
def test_a_patch_14_crop_is_padded_and_the_output_is_the_crops_size(name):
    torch.manual_seed(0)
    model = build_model("segvit", num_classes=3, crop=64, tiny=True, backbone=name).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        output = model(images)
        scores = model.predict(images)
    side = -(-64 // model.meta.patch_size) * model.meta.patch_size
    assert output.padded_to == ((side, side) if side != 64 else None)
    assert scores.shape == (1, 3, 64, 64)


def test_padding_is_bottom_right_and_cropped_back():
    torch.manual_seed(0)
    model = build_model(
        "atm_single", num_classes=3, crop=60, tiny=True, backbone="vit_small_patch14_dinov2"
    ).eval()
    images = torch.randn(1, 3, 60, 60)
    padded = torch.nn.functional.pad(images, (0, 10, 0, 10))  # 70 = 5 patches of 14
    with torch.no_grad():
        scores = model.predict(images)
        whole = model.predict(padded)
    torch.testing.assert_close(scores, whole[..., :60, :60])


def test_labels_are_padded_with_ignore_to_the_padded_input():
    labels = torch.zeros(1, 60, 60, dtype=torch.long)
    output = SegOutput(None, torch.zeros(1, 3, 5, 5), padded_to=(70, 70))
    padded = pad_labels(output, labels)
    assert padded.shape == (1, 70, 70)
    assert (padded[:, 60:] == 255).all() and (padded[:, :, 60:] == 255).all()
    assert (padded[:, :60, :60] == 0).all()


def test_unknown_or_foreign_backbones_are_one_line_errors():
    with pytest.raises(SegvitError, match="not a ViT family"):
        backbone_spec("resnet50.a1_in1k")
    with pytest.raises(SegvitError, match="keeps its own backbone"):
        build_model("setr_b", num_classes=3, crop=64, backbone="vit_small_patch14_dinov2")


def test_beit_whole_inference_at_another_size_is_one_line():
    model = build_model(
        "segvit", num_classes=3, crop=64, tiny=True, backbone="beitv2_base_patch16_224"
    ).eval()
    with pytest.raises(SegvitError, match="--mode slide"):
        model.predict(torch.randn(1, 3, 96, 64))


def test_layers_choose_the_taps_and_shrunk_puts_qd_after_the_first():
    model = build_model("segvit_shrunk", num_classes=3, crop=64, tiny=True,
                        backbone="deit3_small_patch16_224", layers=(2, 9))  # fmt: skip
    assert model.backbone.out_indices == (2, 9) and model.backbone.qd_index == 3
    assert model.meta.layers == (2, 9)
    with pytest.raises(SegvitError, match="--layers"):
        build_model("segvit", num_classes=3, crop=64, tiny=True,
                    backbone="deit3_small_patch16_224", layers=(3, 12))  # fmt: skip


def _tiny_weights(tmp_path, spec, img_size, name="weights.safetensors"):
    """A timm state dict of the tiny model at another input size (its own pos-embed grid)."""
    torch.manual_seed(1)
    reference = create_timm_vit(spec, img_size, pretrained=None)
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    return reference, path


def test_a_local_weights_file_loads_through_timms_filter(tmp_path):
    spec = tiny_spec(FAMILIES[2])  # DINOv2, patch 14, learned positions
    reference, path = _tiny_weights(tmp_path, spec, 28)  # a 2x2 grid of positions
    backbone = ViTBackbone(spec=spec, img_size=56, out_indices=(1, 3))
    load_timm_pretrained(backbone.vit, path, spec, backbone.img_size)
    fc1 = backbone.vit.blocks[1].mlp.fc1.weight
    torch.testing.assert_close(fc1, reference.blocks[1].mlp.fc1.weight)
    assert backbone.vit.pos_embed.shape[1] == 1 + 4 * 4  # resized once, to the crop's grid


def test_a_missing_or_mismatched_weights_file_is_one_line_naming_it(tmp_path):
    spec = tiny_spec(FAMILIES[2])
    backbone = ViTBackbone(spec=spec, img_size=56, out_indices=(1, 3))
    with pytest.raises(SegvitError, match="no such weights file"):
        load_timm_pretrained(backbone.vit, tmp_path / "nothing.safetensors", spec, 56)
    _, wider = _tiny_weights(tmp_path, replace(spec, dim=128), 56, "wider.safetensors")
    with pytest.raises(SegvitError, match="wider.safetensors") as err:
        load_timm_pretrained(backbone.vit, wider, spec, 56)
    assert "\n" not in str(err.value)


def test_hub_weights_come_through_timm_and_the_hugging_face_cache(
    tmp_path, monkeypatch, load_by_path
):
    hub_server = load_by_path("hub_server", HUB_SERVER)
    spec = tiny_spec(FAMILIES[2])
    reference, path = _tiny_weights(tmp_path, spec, 56)
    files = {"model.safetensors": hub_server.HubFile(path.read_bytes())}
    backbone = ViTBackbone(spec=spec, img_size=56, out_indices=(1, 3))
    with hub_server.serving(monkeypatch, tmp_path, files) as server:
        server.hub.repo = f"timm/{spec.hub_name}"
        load_timm_pretrained(backbone.vit, "hub", spec, 56)
        asked = [p for _, p, _ in server.hub.requests]
    torch.testing.assert_close(backbone.vit.pos_embed, reference.pos_embed)
    assert any(spec.hub_name in p for p in asked)
    assert list((tmp_path / "hf" / "hub").glob(f"models--timm--{spec.hub_name}"))
