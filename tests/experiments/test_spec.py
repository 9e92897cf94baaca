"""The experiment spec: names resolved once, seeds that seed, rows and CLI calls alike."""

import pytest
import torch

from segvit.criteria import ATMCriterion, PixelCECriterion
from segvit.data.catalog import get_dataset, load_dataset
from segvit.data.info import DatasetSpec
from segvit.engine.recipe import RECIPES
from segvit.errors import SegvitError
from segvit.experiments.spec import checkpoint_dataset, resolve


def _weights(experiment):
    # Random backbones: the smoke one would be pretrained on the demo data first.
    return experiment.with_recipe(pretrained=None).build_model().state_dict()


def test_one_seed_gives_one_set_of_initial_weights():
    torch.manual_seed(123)  # whatever ran before must not matter
    a = _weights(resolve("segvit_b", recipe="smoke", crop=64, seed=3))
    torch.randn(10)
    b = _weights(resolve("segvit_b", recipe="smoke", crop=64, seed=3))
    c = _weights(resolve("segvit_b", recipe="smoke", crop=64, seed=4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_paper_rows_resolve_their_dataset_crop_and_schedule():
    experiment = resolve("segvit_l", "ade20k")
    assert (experiment.crop, experiment.dataset.num_classes) == (640, 150)
    assert experiment.recipe.iters == 160_000 and experiment.recipe.pretrained == "hub"
    assert experiment.eval.stride_for(experiment.dataset, experiment.crop) == 608
    coco = resolve("segvit_shrunk_l", "coco-stuff-10k", crop=512)
    assert (coco.recipe.iters, coco.recipe.power) == (80_000, 2.0)


def test_smoke_binds_the_demo_set_and_takes_overrides():
    experiment = resolve("setr_b", recipe="smoke", iters=7, lr=None)
    assert experiment.dataset.name == "demo" and experiment.crop == 128
    assert experiment.recipe.iters == 7 and experiment.recipe.tiny
    assert experiment.recipe.lr == RECIPES["smoke"].lr  # None leaves the recipe's value
    assert experiment.recipe.pretrained == "smoke"  # resolved by train_experiment
    on_ade = resolve("setr_b", "ade20k", recipe="smoke")  # any dataset, at the smoke crop
    assert (on_ade.dataset.name, on_ade.crop, on_ade.recipe.iters) == ("ade20k", 128, 150)


def test_the_smoke_crop_shrinks_every_scale_of_the_dataset_in_proportion():
    """ADE20K's (2048, 512) at 512 is (512, 128) at the smoke crop: a crop covers the same
    share of an image; the demo set, at 128 already, is the very same spec."""
    on_ade = resolve("segvit_l", "ade20k", recipe="smoke")
    assert on_ade.crop == on_ade.dataset.crop == 128 and on_ade.dataset.crop_large is None
    assert on_ade.dataset.base_scale_for(128) == (512, 128)
    assert on_ade.dataset.stride_for(128) == 85
    coco = resolve("segvit_b", "coco-stuff-10k", recipe="smoke").dataset
    assert coco.test_min_size == 128  # 512 at the paper's crop
    assert resolve("segvit_b", recipe="smoke").dataset is load_dataset("demo")
    explicit = resolve("segvit_b", "ade20k", recipe="smoke", crop=256)  # --crop still wins
    assert explicit.crop == 256 and explicit.dataset.base_scale_for(256) == (1024, 256)
    paper = resolve("segvit_b", "ade20k")  # the paper's recipe: the dataset as it is
    assert paper.crop == 512 and paper.dataset.base_scale_for(512) == (2048, 512)


def test_the_variant_holds_its_criterion():
    assert isinstance(resolve("setr_b").criterion(), PixelCECriterion)
    criterion = resolve("segvit_b").criterion()
    assert criterion == ATMCriterion(150, exclude_ignored_pixels=False)
    excluded = resolve("segvit_b", mask_loss_excludes_ignored=True).criterion()
    assert excluded.exclude_ignored_pixels


def test_record_says_what_the_run_is():
    record = resolve("segvit_b", recipe="smoke").record()
    spec = DatasetSpec.from_record(record.pop("dataset_spec"))
    assert record == {"variant": "segvit_b", "trained_on": "demo", "recipe": "smoke",
                      "loss": "atm"}  # fmt: skip
    assert spec == get_dataset("demo")  # the whole spec, classes included, round-trips


def test_checkpoint_dataset_comes_from_the_file_or_the_option():
    assert checkpoint_dataset({"trained_on": "demo"}).name == "demo"
    assert checkpoint_dataset({"dataset": "ade20k"}).name == "ade20k"  # files before 0.2
    assert checkpoint_dataset({}, "pascal-context").num_classes == 60
    with pytest.raises(SegvitError, match="does not say what it was trained on; pass --dataset"):
        checkpoint_dataset({})


@pytest.mark.parametrize("crop", [100, 0])
def test_bad_crop_fails_before_a_model_is_built(crop):
    with pytest.raises(SegvitError, match=f"--crop {crop}: expected a positive multiple of 16"):
        resolve("segvit_l", "ade20k", crop=crop)


def test_a_recipe_object_takes_each_rows_paper_schedule():
    from segvit.engine.recipe import get_recipe

    paper = get_recipe("paper")  # as `segvit reproduce` holds it, for every row
    assert resolve("segvit_l", "coco-stuff-10k", recipe=paper).recipe.iters == 80_000
    pc = resolve("segvit_l", "pascal-context", recipe=paper).recipe
    assert (pc.iters, pc.weight_decay, pc.power) == (80_000, 0.03, 1.0)
    assert resolve("segvit_b", "ade20k", recipe=paper).recipe.iters == 160_000


def test_a_dataset_files_crop_is_checked_against_the_chosen_backbone(tmp_path):
    """A dataset file may hold a crop only some backbones take (518: DINOv2's 37 patches of
    14); the model chosen for it either takes it or is refused in one line naming the file."""
    import yaml

    for sub in ("im", "lb"):
        (tmp_path / sub).mkdir()
    path = tmp_path / "dataset.yaml"
    splits = {name: {"images": "im", "labels": "lb"} for name in ("train", "val")}
    path.write_text(yaml.safe_dump({"name": "mine", "classes": ["a", "b"], "crop": 518,
                                    "splits": splits}))  # fmt: skip
    dinov2 = resolve("segvit", str(path), backbone="vit_small_patch14_dinov2.lvd142m")
    assert dinov2.crop == 518
    message = rf"{path}: crop 518: expected a positive multiple of 16 .* for ViT-B.*--crop"
    with pytest.raises(SegvitError, match=message):
        resolve("segvit_b", str(path))
    assert resolve("segvit_b", str(path), crop=512).crop == 512  # --crop overrides it


def test_a_checkpoints_recorded_dataset_wins_over_a_lookup_of_its_name():
    """eval and predict name classes and test settings by the spec the weights file recorded,
    not by whatever dataset now answers to the recorded name (a built-in set, or another
    dataset file of the same name)."""
    from dataclasses import replace

    from segvit.data.catalog import get_dataset
    from segvit.data.info import DatasetSpec

    demo = get_dataset("demo")
    renamed = tuple(f"my {name}" for name in demo.classes)
    recorded = replace(demo, classes=renamed, crop=48).to_record()
    meta = {"trained_on": "demo", "dataset_spec": recorded, "num_classes": demo.num_classes}
    spec = checkpoint_dataset(meta)
    assert spec == DatasetSpec.from_record(recorded)
    assert (spec.classes, spec.crop) == (renamed, 48)
    assert checkpoint_dataset(meta, "demo").classes == demo.classes  # --dataset still wins
