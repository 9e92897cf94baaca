import pytest
import torch
from PIL import Image

from segvit.bench import data as bench
from segvit.data.datasets import list_pairs
from segvit.errors import SegvitError


def test_synthetic_ade_has_ade_sized_jpegs_in_ade_layout(tmp_path):
    info = bench.make_synthetic_ade(tmp_path, count=3)
    pairs = list_pairs(info, info.root(tmp_path), "train")
    assert len(pairs) == 3
    image = Image.open(pairs[0][0])
    assert image.format == "JPEG" and image.size == bench.ADE_SIZE


def test_bench_reports_per_image_times(tmp_path):
    info = bench.make_synthetic_ade(tmp_path, count=2)
    threads = torch.get_num_threads()
    result = bench.bench_pipeline(info, tmp_path, num_images=3)
    assert torch.get_num_threads() == threads  # restored after timing one worker
    assert isinstance(result, bench.PipelineResult)
    assert result.crop == 512 and result.images == 3 and result.dataset == "ade20k"
    assert result.read_ms > 0 and result.transform_ms > 0
    assert abs(result.images_per_s - 1000 / (result.read_ms + result.transform_ms)) < 1e-9


def test_bench_data_refuses_before_any_work(tmp_path):
    with pytest.raises(SegvitError, match="--num-images must be at least 1, got 0"):
        bench.bench_data("demo", tmp_path, crop=None, num_images=0, synthetic=False)
    with pytest.raises(
        SegvitError, match="--synthetic makes ade20k-sized images; use --dataset ade20k"
    ):
        bench.bench_data("coco-stuff-10k", tmp_path, crop=None, num_images=1, synthetic=True)
    with pytest.raises(SegvitError, match=r"no demo data at .*or pass --synthetic"):
        bench.bench_data("demo", tmp_path, crop=None, num_images=1, synthetic=False)


def test_bench_data_on_synthetic_images(tmp_path):
    result = bench.bench_data("ade20k", tmp_path, crop=64, num_images=2, synthetic=True)
    assert (result.dataset, result.images, result.crop) == ("ade20k", 2, 64)
    assert result.read_ms > 0 and result.transform_ms > 0
