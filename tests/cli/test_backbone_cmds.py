"""`segvit backbones`, and a tiny instance of each family through train -> eval -> predict
on the demo set, with the model's own normalisation recorded and used."""

import json

import pytest
import torch

from segvit.data.demo import make_demo
from segvit.engine.loading import load_checkpoint
from segvit.modeling.families import FAMILIES

# A small timm name of each family: `--preset smoke` builds its width-192 twin.
SMALL = {
    "deit3": "deit3_small_patch16_224.fb_in1k",
    "dinov2": "vit_small_patch14_dinov2.lvd142m",
    "dinov2_reg": "vit_small_patch14_reg4_dinov2.lvd142m",
    "dinov3": "vit_small_patch16_dinov3.lvd1689m",
    "eva02": "eva02_tiny_patch14_224.mim_in22k",
    "beitv2": "beitv2_base_patch16_224.in1k_ft_in1k",
    "siglip2": "vit_base_patch16_siglip_224.v2_webli",
    "augreg": "vit_base_patch16_384.augreg_in21k_ft_in1k",
}


def test_backbones_lists_the_eight_families(cli):
    code, out, err = cli("backbones")
    assert code == 0, err
    for family in FAMILIES:
        assert family.label in out and family.example in out
    assert len(FAMILIES) == 8
    assert "licence dinov3-license" in out  # Meta's own terms, said where it is chosen


# Shrunk walks the blocks itself: the position-term families run it end to end too.
CASES = [(key, "segvit") for key in SMALL] + [
    (key, "segvit_shrunk") for key in ("dinov3", "eva02", "beitv2")
]


@pytest.mark.parametrize(("key", "variant"), CASES)  # ~4 s each on a 2-core CPU: all run
def test_a_tiny_instance_trains_evaluates_and_predicts(tmp_path, cli, key, variant):
    data = tmp_path / "data"
    make_demo(data, num_train=4, num_val=1)
    work = tmp_path / "run"
    code, out, err = cli(
        "train", variant, "--backbone", SMALL[key], "--preset", "smoke", "--iters", "2",
        "--batch", "2", "--workers", "0", "--data-root", data, "--work-dir", work,
    )  # fmt: skip
    assert code == 0, err
    model, meta = load_checkpoint(work / "last.pt")
    assert meta["backbone"] == SMALL[key] and meta["variant"] == variant
    norm = model.backbone.spec.norm
    assert meta["norm_mean"] == ",".join(map(repr, norm.mean))
    assert meta["norm_std"] == ",".join(map(repr, norm.std))
    assert meta["layers"] == "" and meta["frozen"] is False
    assert meta["patch_size"] == next(f.patch_size for f in FAMILIES if f.key == key)
    assert model.norm == norm

    code, out, err = cli("eval", work / "last.pt", "--data-root", data, "--out", tmp_path / "e")
    assert code == 0, err
    results = json.loads((tmp_path / "e" / "eval_last_demo_ss.json").read_text())
    assert results["images"] == 1 and 0 <= results["aAcc"] <= 100

    image = next((data / "demo" / "images" / "validation").glob("*.jpg"))
    code, out, err = cli("predict", work / "last.pt", image, "--out", tmp_path / "p")
    assert code == 0, err
    assert (tmp_path / "p" / f"{image.stem}_labels.png").is_file()


def test_flops_counts_a_backbone_by_name(cli):
    code, out, err = cli("flops", "segvit", "--backbone", "vit_small_patch14_reg4_dinov2.lvd142m",
                         "--dataset", "demo", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["gflops"] > report["backbone_gflops"] > 0


def test_a_frozen_backbone_is_recorded_and_left_untouched(tmp_path, cli):
    data = tmp_path / "data"
    make_demo(data, num_train=4, num_val=1)

    def train(work, iters):
        return cli("train", "segvit", "--backbone", SMALL["dinov2_reg"], "--preset", "smoke",
                   "--iters", iters, "--batch", "2", "--workers", "0", "--data-root", data,
                   "--freeze-backbone", "--work-dir", work)  # fmt: skip

    assert train(tmp_path / "two", 2)[0] == 0
    assert train(tmp_path / "three", 3)[0] == 0
    first, meta = load_checkpoint(tmp_path / "two" / "last.pt")
    again, _ = load_checkpoint(tmp_path / "three" / "last.pt")
    assert meta["frozen"] is True
    # One seed, one random backbone: frozen, it is the same after 2 and after 3 steps.
    for (name, a), b in zip(first.backbone.state_dict().items(),
                            again.backbone.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    assert not torch.equal(first.head.queries.weight, again.head.queries.weight)
