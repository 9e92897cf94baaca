"""`reproduce modern --plan`: rows of one variant on different backbones are different models.

Each row's GFLOPs, bench record, parameter count, weights and fix commands are its own
backbone's; before this, every `segvit` row was planned as the ViT-B cascade.
"""

import json
from dataclasses import replace

import huggingface_hub
import pytest

from segvit.bench.train_step import read_record
from segvit.engine.recipe import get_recipe
from segvit.experiments.plan import _param_count, make_plan
from segvit.experiments.sweep import Sweep

DINOV3_B = "vit_base_patch16_dinov3.lvd1689m"
DINOV3_L = "vit_large_patch16_dinov3.lvd1689m"
RECORD = {  # `segvit bench train segvit --backbone DINOV3_B --batch 2 --save` on an H100
    "variant": "segvit", "backbone": DINOV3_B, "frozen": False, "dataset": "ade20k",
    "crop": 512, "batch": 2, "tiny": False, "device": "cuda (NVIDIA H100 80GB HBM3)",
    "dtype": "bfloat16 autocast", "steps": 10, "seconds_per_iter": 0.4,
    "images_per_second": 5.0, "measured_at": "2026-12-01T12:00:00+00:00", "host": "gpu-01",
    "torch": "2.9.1",
}  # fmt: skip


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Counted GFLOPs for the DINOv3 rows, a bench record of the DINOv3-B one, a Hugging Face
    cache holding DINOv3-L's weights only."""
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "weights"))
    cache = tmp_path / "hf" / "hub"
    snapshot = cache / f"models--timm--{DINOV3_L}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"weights")
    (cache / f"models--timm--{DINOV3_L}" / "refs").mkdir()
    (cache / f"models--timm--{DINOV3_L}" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    runs = tmp_path / "runs"
    for row, gflops in (("segvit-dinov3-b-16", 121.32), ("segvit-dinov3-l-16", 382.96)):
        folder = runs / "modern" / "paper" / row
        folder.mkdir(parents=True)
        (folder / "row.json").write_text(
            json.dumps({"status": "missing miou_ss, miou_ms", "measured": {"gflops": gflops}})
        )
    (runs / "bench").mkdir()
    old = {k: v for k, v in RECORD.items() if k not in ("backbone", "frozen")}  # the ViT-B's,
    old |= {"seconds_per_iter": 9.0, "measured_at": "2026-12-05T12:00:00+00:00"}  # and newer
    (runs / "bench" / "segvit-old.json").write_text(json.dumps(old))
    (runs / "bench" / "segvit-dinov3.json").write_text(json.dumps(RECORD))
    return runs


def test_each_backbone_row_is_planned_as_its_own_model(runs, tmp_path):
    sweep = Sweep(get_recipe("paper"), tables=["modern"], rows=["3", "4"], runs_dir=runs,
                  data_root=tmp_path / "data")  # fmt: skip
    plan = make_plan(sweep)
    rows = {row.row: row for row in plan.rows if row.status == "to run"}
    base, large = rows["SegViT, DINOv3-B/16"], rows["SegViT, DINOv3-L/16"]

    # DINOv3-B: its own bench record (not the variant's record without a backbone).
    assert base.step.measured and base.step.seconds_per_image == pytest.approx(0.2)
    assert "segvit-dinov3.json" in base.step.source
    # DINOv3-L: no record of its own; assumed from ITS counted GFLOPs, not the B row's.
    assert not large.step.measured and "383.0 GFLOPs" in large.step.source
    assert large.checkpoint_gb > 3 * base.checkpoint_gb  # ~300M against ~100M parameters
    assert _param_count("segvit", DINOV3_L, 150, 512, False) > 3e8

    weights = {m.name: m for m in plan.missing if m.kind == "weights"}
    assert list(weights) == [DINOV3_B]  # DINOv3-L is in the cache
    assert "not in the Hugging Face cache" in weights[DINOV3_B].problem
    assert f"timm.create_model('{DINOV3_B}', pretrained=True)" in weights[DINOV3_B].fix
    disk = [item.what for item in plan.disk]
    assert f"{DINOV3_L} weights (Hugging Face cache), cached" in disk
    assert not any("AugReg" in what for what in disk)  # no row here needs the paper's ViT

    (measure,) = [m for m in plan.missing if m.kind == "measurement"]
    assert measure.name == f"segvit on {DINOV3_L}"
    assert f"segvit bench train segvit --backbone {DINOV3_L} --dataset ade20k" in measure.fix


def test_a_record_reads_back_its_backbone_and_frozen_flag(runs):
    record = read_record(runs / "bench" / "segvit-dinov3.json")
    assert (record.variant, record.backbone, record.frozen) == ("segvit", DINOV3_B, False)
    old = read_record(runs / "bench" / "segvit-old.json")  # written before backbones
    assert (old.backbone, old.frozen) == (None, False)


def test_records_of_one_variant_on_two_backbones_are_two_files():
    from segvit.bench.train_step import BenchResult, record_name

    result = BenchResult(
        variant="segvit", dataset="ade20k", crop=512, batch=2, tiny=False,
        device="cuda (NVIDIA H100 80GB HBM3)", dtype="bfloat16 autocast", steps=10,
        seconds_per_iter=0.4, images_per_second=5.0, peak_memory_mb=1.0,
        memory_kind="cuda max allocated", baseline_memory_mb=0.0, params_m=1.0,
        final_loss=1.0, schedule_hours=1.0, backbone=DINOV3_B,
    )  # fmt: skip
    names = {
        record_name(result),
        record_name(replace(result, backbone=DINOV3_L)),
        record_name(replace(result, backbone=DINOV3_L, frozen=True)),
        record_name(replace(result, backbone=None)),
    }
    assert len(names) == 4
    assert record_name(result).startswith("segvit-vit_base_patch16_dinov3.lvd1689m-ade20k-512")
