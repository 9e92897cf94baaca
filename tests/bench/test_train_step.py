"""The training-step benchmark: sane figures, a step that trains, loud bad input."""

import math
from dataclasses import replace

import pytest
import torch

from segvit.bench.train_step import CLASSES_PER_IMAGE, BenchConfig, synthetic_batch, train_step
from segvit.criteria import PixelCECriterion
from segvit.engine.distributed import resolve_device
from segvit.engine.optim import build_optimizer
from segvit.errors import SegvitError
from segvit.experiments.bench_train import bench_train
from segvit.modeling.variants import build_model, get_variant


@pytest.fixture
def one_thread():
    """Tiny models step many times faster in one thread on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_figures_are_positive_finite_and_consistent():
    cfg = BenchConfig("segvit_b", crop=64, steps=2, warmup=1, tiny=True, device="cpu", threads=1)
    threads = torch.get_num_threads()
    result = bench_train(cfg)
    assert torch.get_num_threads() == threads  # restored
    assert result.device.endswith(", 1 thread)")
    assert (result.variant, result.dataset, result.crop) == ("segvit_b", "ade20k", 64)
    assert result.batch == 2  # the CPU default
    assert result.device.startswith("cpu (") and result.dtype == "float32"
    assert result.memory_kind == "process peak RSS"
    for value in (result.seconds_per_iter, result.params_m, result.schedule_hours):
        assert value > 0 and math.isfinite(value)
    assert result.images_per_second == pytest.approx(2 / result.seconds_per_iter)
    assert result.peak_memory_mb >= result.baseline_memory_mb > 0
    assert math.isfinite(result.final_loss) and result.final_loss > 0
    # 160k iterations of 16 images, one device: 8 steps of this batch per iteration.
    expected = result.seconds_per_iter * 8 * 160_000 / 3600
    assert result.schedule_hours == pytest.approx(expected)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("variant", ["segvit_shrunk_b", "setr_b", "atm_single_ce_b"])
def test_train_step_updates_backbone_and_head(variant):
    torch.manual_seed(0)
    model = build_model(variant, num_classes=8, crop=64, tiny=True).train()
    optimizer = build_optimizer(model, lr=1e-3)
    loss_fn = get_variant(variant).criterion(8)
    images, labels = synthetic_batch(2, 64, 8, generator=torch.Generator().manual_seed(0))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss = train_step(model, optimizer, images, labels, loss_fn, clip_grad=35.0)
    assert loss.dim() == 0 and not loss.requires_grad and torch.isfinite(loss)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert any(name.startswith("backbone.") for name in changed)
    assert any(name.startswith("head.") for name in changed)


@pytest.mark.usefixtures("one_thread")
def test_train_step_clips_the_gradient_norm():
    torch.manual_seed(0)
    model = build_model("setr_b", num_classes=8, crop=32, tiny=True).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the gradients to inspect
    images, labels = synthetic_batch(1, 32, 8, generator=torch.Generator().manual_seed(0))
    train_step(model, optimizer, images, labels, PixelCECriterion(8), clip_grad=1e-3)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_synthetic_batch_has_few_classes_and_an_ignored_band():
    images, labels = synthetic_batch(3, 64, 150, generator=torch.Generator().manual_seed(1))
    assert images.shape == (3, 3, 64, 64) and images.dtype == torch.float32
    assert labels.shape == (3, 64, 64) and labels.dtype == torch.int64
    assert (labels[:, -4:] == 255).all() and not (labels[:, :-4] == 255).any()
    for label in labels:
        present = label[label != 255].unique()
        assert 1 <= present.numel() <= CLASSES_PER_IMAGE
        assert present.min() >= 0 and present.max() < 150
    _, again = synthetic_batch(3, 64, 150, generator=torch.Generator().manual_seed(1))
    assert torch.equal(labels, again)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "--steps must be > 0"),
        ({"warmup": -1}, "--warmup must be >= 0"),
        ({"batch": 0}, "--batch must be None or > 0"),
        ({"threads": 0}, "--threads must be None or > 0"),
    ],
)
def test_bad_counts_are_rejected(overrides, message):
    with pytest.raises(SegvitError, match=message):
        BenchConfig("segvit_b", **overrides)


def test_bad_crop_and_variant_fail_before_building():
    with pytest.raises(SegvitError, match="--crop 100: expected a positive multiple of 16"):
        bench_train(BenchConfig("segvit_b", crop=100))
    with pytest.raises(SegvitError, match="unknown variant 'segvit_xl'"):
        bench_train(BenchConfig("segvit_xl"))


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SegvitError, match="--device gpu: expected auto, cpu or cuda"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_is_an_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SegvitError, match="--device cuda: CUDA is not available"):
        resolve_device("cuda")


def test_flops_figures_and_a_saved_record(tmp_path):
    from segvit.analysis.flops import count_flops
    from segvit.bench.train_step import pick_record, read_record, record_name, write_record

    cfg = BenchConfig("setr_b", crop=32, steps=1, warmup=0, tiny=True, device="cpu", threads=1)
    result = bench_train(cfg)
    torch.manual_seed(0)
    counted = count_flops(build_model("setr_b", num_classes=150, crop=32, tiny=True)).gflops
    assert result.model_gflops == pytest.approx(counted)
    # fvcore counts a multiply-add once: x2 for FLOPs, x3 for forward and backward.
    assert result.train_tflops == pytest.approx(6 * counted * result.images_per_second / 1e3)
    assert (result.peak_tflops, result.mfu) == (None, None)  # no peak for a CPU

    path = write_record(result, tmp_path)
    assert (
        path
        == tmp_path / "setr_b-tiny-ade20k-32-b2-fp32-cpu.json"
        == tmp_path / (record_name(result) + ".json")
    )
    record = read_record(path)
    assert (record.variant, record.crop, record.batch, record.tiny) == ("setr_b", 32, 2, True)
    assert record.seconds_per_image == pytest.approx(result.seconds_per_iter / 2)
    assert record.measured_at.endswith("+00:00") and record.device == result.device

    gpu = replace(record, device="cuda (NVIDIA H100 80GB HBM3)", dtype="bfloat16 autocast")
    old = replace(gpu, measured_at="2000-01-01T00:00:00+00:00")
    fp32 = replace(gpu, dtype="float32", measured_at="2100-01-01T00:00:00+00:00")
    chosen = pick_record([record, old, fp32, gpu], "setr_b", 32, tiny=True, dataset="ade20k")
    assert chosen is gpu  # a GPU's, mixed precision, the newest; the CPU's last
    assert pick_record([record], "setr_b", 64, tiny=True, dataset="ade20k") is None


def test_no_flops_leaves_mfu_empty():
    cfg = BenchConfig("setr_b", crop=32, steps=1, warmup=0, tiny=True, device="cpu", flops=False)
    result = bench_train(cfg)
    assert (result.model_gflops, result.train_tflops, result.mfu) == (None, None, None)
