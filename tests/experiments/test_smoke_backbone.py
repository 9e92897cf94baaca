"""The smoke backbone: pretrained once, cached under a key, loaded by every Table 8 row."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

import segvit.experiments.smoke_backbone as sb
from segvit.data.demo import make_demo
from segvit.errors import SegvitError
from segvit.experiments.smoke_backbone import PRETEXT, PretextLoss, PretextOutput, smoke_backbone
from segvit.experiments.spec import resolve, with_backbone
from segvit.modeling.variants import build_model

TINY = replace(
    PRETEXT,
    recipe=replace(
        PRETEXT.recipe, iters=2, batch=2, warmup_iters=1, checkpoint_interval=1, log_interval=1
    ),
)
TABLE8 = ("segvit_b", "setr_b", "atm_single_b", "naive_shrunk_b", "segvit_shrunk_b")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_demo(root, num_train=4, num_val=1)
    return root


@pytest.fixture(scope="module")
def built(demo, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, smoke_backbone(demo, cache, pretext=TINY, num_workers=0)


def test_built_once_then_read_from_the_cache(demo, built, monkeypatch):
    cache, path = built
    assert path.parent == cache and path.suffix == ".safetensors"
    assert sorted(p.name for p in cache.iterdir()) == [path.name]  # the run folder is gone
    stamp = path.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(sb, "train", no_training)
    assert smoke_backbone(demo, cache, pretext=TINY, num_workers=0) == path
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("variant", TABLE8)
def test_every_table8_row_starts_from_the_file(built, variant):
    _, path = built
    saved = load_file(path)
    assert "pos_embed" in saved and saved["pos_embed"].shape == (1, 64, 192)
    model = build_model(variant, num_classes=8, crop=128, tiny=True, pretrained=str(path))
    backbone = model.backbone.vit.state_dict()
    assert backbone, variant
    for name, tensor in backbone.items():
        assert torch.equal(tensor, saved[name]), name


def test_another_setting_or_demo_set_trains_anew(demo, built, tmp_path):
    cache, path = built
    other_seed = replace(TINY, recipe=replace(TINY.recipe, seed=1))
    assert sb.backbone_key(other_seed, crop=128, demo_marker={}) != sb.backbone_key(
        TINY, crop=128, demo_marker={}
    )
    assert sb.backbone_key(TINY, crop=128, demo_marker={"version": 2}) != sb.backbone_key(
        TINY, crop=128, demo_marker={"version": 1}
    )
    other = smoke_backbone(demo, cache, pretext=other_seed, num_workers=0)
    assert other != path and other.is_file()
    assert not torch.equal(load_file(other)["pos_embed"], load_file(path)["pos_embed"])


def test_a_killed_pretraining_leaves_no_weights_file_and_resumes(demo, tmp_path, monkeypatch):
    real_train = sb.train

    def killed(*args, **kwargs):
        def stop(iteration):
            if iteration == 1:
                raise KeyboardInterrupt

        return real_train(*args, **kwargs, on_iteration=stop)

    monkeypatch.setattr(sb, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        smoke_backbone(demo, tmp_path, pretext=TINY, num_workers=0)
    assert not list(tmp_path.glob("*.safetensors"))
    (run,) = tmp_path.glob("*.run")
    assert (run / "last.state.pt").is_file()
    monkeypatch.setattr(sb, "train", real_train)
    path = smoke_backbone(demo, tmp_path, pretext=TINY, num_workers=0)
    assert path.is_file() and not run.exists()


def test_the_smoke_recipe_resolves_its_sentinel(demo, monkeypatch, tmp_path):
    experiment = resolve("setr_b", recipe="smoke")
    assert experiment.recipe.pretrained == "smoke"
    with pytest.raises(SegvitError, match="smoke backbone is pretrained on the dataset first"):
        experiment.build_model()
    fake = tmp_path / "weights.safetensors"
    monkeypatch.setattr(sb, "smoke_backbone", lambda data_root, **_: fake)
    assert with_backbone(experiment, demo).recipe.pretrained == str(fake)
    paper = resolve("setr_b", "ade20k")
    assert with_backbone(paper, demo) is paper


def test_pretext_loss_names_each_tokens_cell():
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    classes = [torch.zeros(2, 3, 2, 2)]
    right = torch.eye(4).repeat(2, 1, 1) * 50  # (B, cells, cells): token i -> cell i
    wrong = right.roll(1, dims=-1)
    loss = PretextLoss(position_weight=0.5)
    good = loss(PretextOutput(classes, [right]), labels)
    bad = loss(PretextOutput(classes, [wrong]), labels)
    assert good["loss_cells"] == pytest.approx(0.0, abs=1e-6)
    assert bad["loss_cells"] == pytest.approx(0.5 * 50, rel=1e-3)
    assert good["loss_classes"] == pytest.approx(torch.log(torch.tensor(3.0)).item(), rel=1e-5)
    assert good["loss"] == pytest.approx(good["loss_classes"] + good["loss_cells"])


def test_the_first_smoke_run_says_what_it_pretrains_and_where_it_keeps_it(demo, tmp_path, capfd):
    path = smoke_backbone(demo, tmp_path, pretext=TINY, num_workers=0)
    err = capfd.readouterr().err
    assert "the smoke backbone's pretraining" in err and "once" in err and str(path) in err
    assert "smoke backbone pretraining: iter 1/2" in err  # not the user's `iter 1/2`
    smoke_backbone(demo, tmp_path, pretext=TINY, num_workers=0)
    assert capfd.readouterr().err == ""  # cached: not a word


def test_a_corrupt_cached_backbone_says_delete_it_and_rerun(demo, built, tmp_path):
    _, path = built
    cut = tmp_path / path.name
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SegvitError, match=r"cached smoke backbone is unreadable .* delete it and"):
        smoke_backbone(demo, tmp_path, pretext=TINY, num_workers=0)


def test_a_moved_dataset_folder_keeps_its_backbone_key(tmp_path):
    """The key holds no absolute path: the same files elsewhere are the same data."""
    import shutil

    import numpy as np
    from PIL import Image

    from segvit.data.catalog import load_dataset
    from segvit.data.datasets import SegDataset

    tree = tmp_path / "a" / "mydata"
    for split, count in (("train", 3), ("val", 1)):
        (tree / split / "img").mkdir(parents=True)
        (tree / split / "lbl").mkdir()
        for i in range(count):
            image = Image.fromarray(np.full((40, 48, 3), i * 20, np.uint8))
            image.save(tree / split / "img" / f"{i}.jpg")
            Image.fromarray(np.full((40, 48), i % 2, np.uint8)).save(
                tree / split / "lbl" / f"{i}.png"
            )
    (tree / "dataset.yaml").write_text(
        "name: mydata\nclasses: [a, b]\ncrop: 512\nsplits:\n"
        "  train: {images: train/img, labels: train/lbl}\n"
        "  val: {images: val/img, labels: val/lbl}\n"
    )

    def key(folder):
        spec = load_dataset(str(folder / "dataset.yaml")).at_crop(128)
        train_set = SegDataset(spec, folder, "train")
        return sb.backbone_key(PRETEXT, crop=128, demo_marker=sb._data_key(spec, folder, train_set))

    before = key(tree)
    moved = shutil.move(tree, tmp_path / "b" / "elsewhere")
    assert key(moved) == before
    (moved / "train" / "lbl" / "0.png").write_bytes(
        (moved / "train" / "lbl" / "1.png").read_bytes()
    )
    assert key(moved) != before  # other label contents (another size): other data
