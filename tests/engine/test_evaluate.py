"""Evaluation over a split: checkpoints rebuild their model; metrics are wired as by hand."""

import pytest
import torch

from segvit.data.catalog import get_dataset
from segvit.data.datasets import SegDataset
from segvit.data.demo import make_demo
from segvit.engine.checkpoint import save_weights
from segvit.engine.evaluate import EvalSettings, evaluate
from segvit.engine.loading import load_checkpoint
from segvit.errors import SegvitError
from segvit.inference import InferenceSettings, infer
from segvit.metrics import SegMetric
from segvit.modeling.variants import build_model


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_demo(root, num_train=4, num_val=3)
    return root


def _tiny(variant="segvit_b"):
    torch.manual_seed(0)
    return build_model(variant, num_classes=8, crop=64, tiny=True).eval()


def _save(model, path):
    save_weights(path, model.state_dict(), model.meta.to_dict() | {"iteration": 1})
    return path


def test_checkpoint_rebuilds_the_same_model(tmp_path):
    model = _tiny("segvit_shrunk_b")
    loaded, meta = load_checkpoint(_save(model, tmp_path / "w.pt"))
    assert loaded.meta == model.meta and meta["iteration"] == 1
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded.predict(x), model.predict(x))


def test_weights_of_another_variant_are_refused(tmp_path):
    model = _tiny("segvit_b")
    path = tmp_path / "w.pt"
    meta = model.meta.to_dict() | {"variant": "setr_b"}
    save_weights(path, model.state_dict(), meta)
    refused = r"w.pt: weights do not fit the model its metadata describes \(setr_b.*: unexpected"
    with pytest.raises(SegvitError, match=refused + " tensor head.queries.weight"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "change, tensor",
    [
        ({"num_classes": 150}, r"head.queries.weight has shape \(8, 96\), .* needs \(150, 96\)"),
        ({"crop": 128}, r"backbone.vit.pos_embed has shape \(1, 16, 192\), .* \(1, 64, 192\)"),
        ({"tiny": False}, r"backbone.vit.pos_embed has shape \(1, 16, 192\), .* \(1, 16, 768\)"),
    ],
)
def test_metadata_that_disagrees_with_the_weights_names_the_tensor(tmp_path, change, tensor):
    model = _tiny("segvit_b")
    path = tmp_path / "w.pt"
    save_weights(path, model.state_dict(), model.meta.to_dict() | change)
    with pytest.raises(SegvitError, match=tensor) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_class_count_mismatch_is_refused(demo_root):
    with pytest.raises(SegvitError, match="predicts 8 classes; dataset ade20k has 150"):
        evaluate(_tiny(), get_dataset("ade20k"), data_root=demo_root)


def test_stride_defaults_to_the_papers_or_two_thirds_of_the_crop():
    assert get_dataset("ade20k").stride_for(640) == 608
    assert get_dataset("pascal-context").stride_for(480) == 320
    assert get_dataset("demo").stride_for(64) == 42  # not the 128 crop's 85: no uncovered columns
    assert EvalSettings(stride=64).stride_for(get_dataset("demo"), 64) == 64
    with pytest.raises(SegvitError, match="--stride 65: expected 1 to the crop \\(64\\)"):
        EvalSettings(stride=65).stride_for(get_dataset("demo"), 64)


def test_metrics_equal_a_hand_loop(demo_root):
    model = _tiny()
    results = evaluate(model, get_dataset("demo"), data_root=demo_root, progress=False)
    info = get_dataset("demo")
    dataset = SegDataset(info, demo_root, "val")  # the decoded 8-bit photos and labels
    settings = InferenceSettings(num_classes=8, crop=64, stride=42, base_scale=(512, 128))
    metric = SegMetric(num_classes=8)
    for i in range(len(dataset)):
        sample = dataset[i]
        probs = infer(model.predict, sample["image"], settings)
        metric.update(probs.argmax(0), torch.from_numpy(sample["label"]))
    expected = metric.compute()
    assert results["images"] == 3
    assert results["mIoU"] == pytest.approx(expected["mIoU"], nan_ok=True)
    assert results["aAcc"] == pytest.approx(expected["aAcc"])
    assert results["classes"][1] == "disc" and len(results["IoU"]) == 8
    assert results["settings"]["crop"] == 64 and results["settings"]["multi_scale"] is False


def test_multi_scale_runs_and_max_images(demo_root):
    cfg = EvalSettings(multi_scale=True, max_images=1)
    results = evaluate(
        _tiny("setr_b"), get_dataset("demo"), cfg, data_root=demo_root, progress=False
    )
    assert results["images"] == 1
    assert 0.0 <= results["aAcc"] <= 100.0


def test_ranks_score_disjoint_shares_that_add_up_to_the_split(demo_root, monkeypatch):
    """Under torch.distributed each rank scores every world-th image; summed, the matrices
    equal one process scoring the whole split."""
    from segvit.engine import evaluate as evaluate_module

    seen = []
    monkeypatch.setattr(SegMetric, "all_reduce", lambda self, group=None: seen.append(self))
    model, cfg = _tiny(), get_dataset("demo")
    evaluate(model, cfg, data_root=demo_root, progress=False)
    whole = seen.pop().confusion
    for rank in (0, 1):
        monkeypatch.setattr(evaluate_module, "_rank_and_world", lambda rank=rank: (rank, 2))
        evaluate(model, cfg, data_root=demo_root, progress=False)
    first, second = seen
    assert first.confusion.sum() > 0 and second.confusion.sum() > 0
    assert torch.equal(first.confusion + second.confusion, whole)
