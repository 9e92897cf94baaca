"""The prediction benchmark: sane figures, and the band path's peak below the old path's."""

import functools
from dataclasses import replace

import pytest
import torch

from segvit.bench.predict import bench_predict
from segvit.data.catalog import DATASETS
from segvit.errors import SegvitError
from segvit.inference import MS_SCALES, InferenceSettings
from segvit.modeling.variants import build_model

ADE = DATASETS["ade20k"]
TINY = functools.partial(build_model, "segvit_b", num_classes=150, crop=64, tiny=True)
# The tiny model's crop 64, its window and base scale scaled as ADE20K's at 512.
SS = InferenceSettings(num_classes=150, crop=64, stride=48, base_scale=(256, 64), window_batch=1)
MS = replace(SS, scales=MS_SCALES, flip=True)


def test_figures_of_one_prediction_in_this_process():
    before = torch.get_num_threads()
    result = bench_predict(
        TINY, dataset=ADE, settings=SS, height=90, width=120, threads=1, isolated=False
    )
    assert torch.get_num_threads() == before  # an in-process run leaves the caller's threads
    assert (result.variant, result.num_classes) == ("segvit_b", 150)
    assert (result.height, result.width, result.path, result.threads) == (90, 120, "bands", 1)
    assert not result.multi_scale and not result.isolated
    assert result.seconds > 0
    assert 0 < result.before_rss_mb <= result.peak_rss_mb
    assert result.to_dict()["prediction_rss_mb"] == round(result.prediction_rss_mb, 1)


def test_one_prediction_in_a_fresh_process():
    result = bench_predict(TINY, dataset=ADE, settings=MS, height=60, width=80, threads=1)
    assert result.isolated and result.multi_scale and result.path == "bands"
    assert result.seconds > 0 and 0 < result.before_rss_mb <= result.peak_rss_mb


@pytest.mark.slow
def test_fresh_processes_show_the_old_path_peaking_higher():
    # 480x640 with 150 classes: each full-resolution class map set is 184 MB, and the old
    # path holds three (resized scores, their softmax, the running sum). Bands of 8 rows keep
    # the new path's buffers small next to that.
    kw = dict(dataset=ADE, settings=MS, height=480, width=640, threads=1)
    bands = bench_predict(TINY, band_rows=8, **kw)
    full = bench_predict(TINY, full_path=True, **kw)
    assert bands.isolated and full.isolated and bands.multi_scale
    assert (bands.path, full.path) == ("bands", "full")
    assert full.prediction_rss_mb > 3 * 184 * 0.9
    # Measured here: about 130 MB against 635 MB.
    assert bands.prediction_rss_mb < full.prediction_rss_mb / 2, (bands, full)


def test_bad_sizes_are_refused():
    with pytest.raises(SegvitError, match="positive image size"):
        bench_predict(TINY, dataset=ADE, settings=SS, height=0, width=10)
    with pytest.raises(SegvitError, match="threads"):
        bench_predict(TINY, dataset=ADE, settings=SS, height=10, width=10, threads=0)
    with pytest.raises(SegvitError, match="150 classes at crop 64, the settings 150 at crop 128"):
        bench_predict(
            TINY, dataset=ADE, settings=replace(SS, crop=128), height=10, width=10, isolated=False
        )


def test_the_onnx_backend_and_bf16_are_measured_on_the_same_image():
    same = dict(dataset=ADE, settings=SS, height=60, width=80, threads=1, isolated=False)
    onnx = bench_predict(TINY, backend="onnx", **same)
    assert (onnx.backend, onnx.precision) == ("onnx", "fp32") and onnx.seconds > 0
    bf16 = bench_predict(TINY, precision="bf16", **same)
    assert (bf16.backend, bf16.precision) == ("torch", "bf16") and bf16.seconds > 0
    with pytest.raises(SegvitError, match="backend 'tvm': expected torch or onnx"):
        bench_predict(TINY, dataset=ADE, settings=SS, height=60, width=80, backend="tvm")
