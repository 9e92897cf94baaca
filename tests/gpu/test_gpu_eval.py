"""Evaluation on the GPU gives the CPU's result: single- and multi-scale sliding-window
inference on a few demo images, the same metrics and (nearly) the same class maps."""

import numpy as np
import pytest
import torch

from segvit.data.catalog import get_dataset
from segvit.data.datasets import SegDataset
from segvit.data.demo import make_demo
from segvit.engine.evaluate import EvalSettings, evaluate
from segvit.engine.predict import read_rgb, segment
from segvit.modeling.variants import build_model

pytestmark = pytest.mark.gpu

IMAGES = 4
# float32 on both devices (TF32 off): scores differ by rounding only, which can flip the
# arg-max of a pixel whose two best classes are within ~1e-6: a handful of pixels at most.
AGREEMENT = 0.995
MIOU_POINTS = 0.5


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_demo(root, num_train=2, num_val=IMAGES)
    return root


@pytest.mark.usefixtures("fp32_matmuls")
@pytest.mark.parametrize("multi_scale", [False, True], ids=["ss", "ms"])
def test_gpu_matches_cpu(demo, cuda, multi_scale):
    spec = get_dataset("demo")
    torch.manual_seed(0)
    model = build_model("segvit_b", num_classes=spec.num_classes, crop=spec.crop, tiny=True)
    model.eval()
    settings = EvalSettings(max_images=IMAGES, multi_scale=multi_scale)
    paths = [image for image, _ in SegDataset(spec, demo, "val", None).pairs]
    on_cpu = evaluate(model, spec, settings, data_root=demo, progress=False)
    maps_cpu = [segment(model, read_rgb(p), spec, multi_scale=multi_scale) for p in paths]
    model.to(cuda)
    on_gpu = evaluate(model, spec, settings, data_root=demo, progress=False)
    maps_gpu = [segment(model, read_rgb(p), spec, multi_scale=multi_scale) for p in paths]

    assert on_gpu["images"] == on_cpu["images"] == IMAGES
    for metric in ("mIoU", "aAcc", "mAcc"):
        assert on_gpu[metric] == pytest.approx(on_cpu[metric], abs=MIOU_POINTS), metric
    agree = np.mean([np.mean(a == b) for a, b in zip(maps_cpu, maps_gpu, strict=True)])
    print(f"{'ms' if multi_scale else 'ss'}: mIoU cpu {on_cpu['mIoU']:.2f} gpu "
          f"{on_gpu['mIoU']:.2f}; class maps agree on {agree:.4%} of pixels")  # fmt: skip
    assert agree >= AGREEMENT
