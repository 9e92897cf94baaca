"""`reproduce --plan` on Table 8: one row done, one bench record, no data, no weights cached.

The plan must predict what `reproduce` then does, estimate from the measured figure where
there is one (and say so), label the assumption where there is none, and give the fixes.
"""

import json

import pytest
import torch

from segvit.analysis.hardware import ASSUMED_MFU, REFERENCE_PEAK, seconds_per_image
from segvit.engine.recipe import get_recipe
from segvit.errors import SegvitError
from segvit.experiments.config import load_table
from segvit.experiments.launch import Launch
from segvit.experiments.plan import CHECKPOINT_BYTES_PER_PARAM, _param_count, make_plan
from segvit.experiments.reproduce import reproduce
from segvit.experiments.sweep import Sweep, experiment_file
from segvit.modeling.specs import VIT_B
from segvit.modeling.variants import build_model
from segvit.modeling.weights import hub_url

PAPER = get_recipe("paper")
RECORD = {  # what `segvit bench train atm_single_b --batch 2 --save` writes on an H100
    "variant": "atm_single_b", "dataset": "ade20k", "crop": 512, "batch": 2, "tiny": False,
    "device": "cuda (NVIDIA H100 80GB HBM3)", "dtype": "bfloat16 autocast", "steps": 10,
    "seconds_per_iter": 0.5, "images_per_second": 4.0, "measured_at": "2025-05-01T12:00:00+00:00",
    "host": "gpu-07", "torch": "2.5.1",
}  # fmt: skip


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """runs/: row 1 done (row.json with every metric, final.pt), row 3 half trained, a bench
    record of row 2's model; an empty data root and weights cache."""
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "weights"))
    runs = tmp_path / "runs"
    done = runs / "table8" / "paper" / "single-setr"
    done.mkdir(parents=True)
    (done / "row.json").write_text(
        json.dumps({"status": "done", "measured": {"miou_ss": 46.1, "gflops": 107.2}})
    )
    (done / "final.pt").write_bytes(b"weights")
    half = runs / "table8" / "paper" / "naive-shrunk-atm" / "train"
    half.mkdir(parents=True)
    (half / "last.state.pt").write_bytes(b"state")
    logged = [{"kind": "train", "iter": i} for i in (50, 4100)] + [{"kind": "eval", "iter": 4000}]
    (half / "log.jsonl").write_text("\n".join(map(json.dumps, logged)) + "\n{cut sho")
    (runs / "bench").mkdir()
    (runs / "bench" / "atm_single_b-ade20k-512-b2.json").write_text(json.dumps(RECORD))
    return runs, tmp_path / "data"


def plan_of(sweep, bench_files=None, **kwargs):
    runs, data = sweep
    chosen = Sweep(PAPER, tables=["table8"], runs_dir=runs, data_root=data, launch=Launch(gpus=8),
                   **kwargs)  # fmt: skip
    return make_plan(chosen, bench_files=bench_files)


def test_rows_stages_and_estimates(sweep):
    plan = plan_of(sweep)
    done, measured, resumed, assumed = plan.rows
    assert [r.status for r in plan.rows] == ["done", "to run", "to run", "to run"]
    assert done.run == () and done.iters is None and done.gpu_hours is None
    assert done.skipped == ("flops: counted", "train: final.pt exists", "eval: scored")

    assert measured.run == ("flops", "train", "eval") and measured.iters == 160_000
    assert measured.step.measured and measured.step.seconds_per_image == 0.25
    for fact in ("2025-05-01T12:00:00+00:00", "NVIDIA H100 80GB HBM3", "gpu-07", "batch 2",
                 "atm_single_b-ade20k-512-b2.json"):  # fmt: skip
        assert fact in measured.step.source
    # 160k iterations x 16 images x 0.25 s per image on one GPU.
    assert measured.gpu_hours == pytest.approx(160_000 * 16 * 0.25 / 3600)

    # 4,100 iterations logged, checkpoints every 2,000: the run continues from 4,000.
    assert resumed.resumes_at == 4000 and not resumed.step.measured
    per_image = seconds_per_image(74.1, REFERENCE_PEAK.bf16_tflops, ASSUMED_MFU)
    assert resumed.gpu_hours == pytest.approx(156_000 * 16 * per_image / 3600)
    assert "assumed, not measured: 30% MFU of an H100 SXM" in resumed.step.source
    assert "74.1 GFLOPs (the paper's table8)" in resumed.step.source
    assert assumed.gpu_hours == pytest.approx(
        160_000 * 16 * seconds_per_image(97.1, 989, 0.3) / 3600
    )

    assert plan.gpu_hours == pytest.approx(
        measured.gpu_hours + resumed.gpu_hours + assumed.gpu_hours
    )
    assert plan.wall_hours == pytest.approx(plan.gpu_hours / 8)
    assert plan.unestimated == []


def test_missing_things_come_with_their_fix(sweep):
    runs, data = sweep
    plan = plan_of(sweep)
    by_kind = {}
    for item in plan.missing:
        by_kind.setdefault(item.kind, []).append(item)
    (dataset,) = by_kind["data"]
    assert dataset.name == "ade20k" and dataset.fix == f"segvit prepare ade20k --root {data}"
    assert "no ade20k data at" in dataset.problem
    (weights,) = by_kind["weights"]
    target = runs.parent / "weights" / f"{VIT_B.hub_name}.safetensors"
    assert weights.fix == f"mkdir -p {target.parent} && curl -fL -o {target} {hub_url(VIT_B)}"
    # One GPU of 8 takes 2 of the 16 images: the measurement to take is at batch 2.
    assert [m.fix for m in by_kind["measurement"]] == [
        f"segvit bench train {v} --dataset ade20k --crop 512 --batch 2 --save --runs {runs}"
        for v in ("naive_shrunk_b", "segvit_shrunk_b")
    ]


def test_disk_counts_data_weights_and_checkpoints(sweep):
    runs, data = sweep
    plan = plan_of(sweep)
    assert [(item.what, round(item.gb, 2)) for item in plan.disk[:3]] == [
        (f"ade20k: archives in {data}/downloads", 0.92),
        ("ade20k: prepared tree", 1.0),
        ("ViT-B/16 AugReg weights", 0.35),  # 86.9M parameters of timm's ViT-B/16 384, float32
    ]
    assert "ADEChallengeData2016.zip, about 0.92 GB" in plan.disk[0].source
    params = _param_count("atm_single_b", None, 150, 512, False)
    assert plan.rows[1].checkpoint_gb == pytest.approx(params * 24 / 1e9)
    checkpoints = plan.disk[3]
    assert checkpoints.what == f"checkpoints of 3 rows to train, under {runs}"
    assert checkpoints.gb == pytest.approx(sum(r.checkpoint_gb for r in plan.rows))
    assert plan.disk_gb == pytest.approx(sum(item.gb for item in plan.disk))
    assert CHECKPOINT_BYTES_PER_PARAM == 24


def test_parameter_counts_match_the_release_checkpoints():
    # The authors' ade_51.3.pth (SegViT ViT-B) and ade_54.6.pth (ViT-L, 640) hold these many
    # numbers, summed from their state-dict listings; segvit drops the class token and its
    # position (1,536 and 2,048 numbers), hence the small differences.
    assert _param_count("segvit_b", None, 150, 512, False) == pytest.approx(108_736_430, rel=2e-5)
    assert _param_count("segvit_l", None, 150, 640, False) == pytest.approx(344_305_454, rel=1e-5)


def test_meta_parameter_count_is_the_real_one():
    torch.manual_seed(0)
    real = build_model("segvit_shrunk_b", num_classes=8, crop=64, tiny=True)
    counted = _param_count("segvit_shrunk_b", None, 8, 64, True)
    assert counted == sum(p.numel() for p in real.parameters())


def test_the_plan_predicts_what_reproduce_runs(sweep, tmp_path):
    runs, data = sweep
    stages = ["train", "eval"]  # GFLOPs counting at the paper's scale takes minutes here
    plan = plan_of(sweep, stages=stages)
    trained, evaluated = [], []

    def train(row, recipe, run_dir):
        trained.append(row.name)
        (run_dir / "train").mkdir(parents=True, exist_ok=True)
        (run_dir / "train" / "last.pt").write_bytes(b"w")
        return run_dir / "train" / "last.pt"

    def evaluate(row, recipe, weights, modes):
        evaluated.append(row.name)
        return {"miou_ss": 1.0}

    table = load_table(experiment_file("table8"))
    chosen = Sweep(PAPER, stages=stages, results=tmp_path / "results", runs_dir=runs)
    reproduce(table, chosen, train_fn=train, eval_fn=evaluate)
    assert trained == [r.row for r in plan.rows if "train" in r.run]
    assert evaluated == [r.row for r in plan.rows if "eval" in r.run]
    assert trained == ["Single / ATM", "Naive Shrunk / ATM", "Shrunk / ATM"]
    assert all(r.status == "done" for r in plan_of(sweep, stages=stages).rows)  # nothing left


def test_smoke_plan_and_rows_not_selected(sweep):
    runs, data = sweep
    chosen = Sweep(get_recipe("smoke"), tables=["table8"], rows=["2"], runs_dir=runs,
                   data_root=data)  # fmt: skip
    plan = make_plan(chosen)
    assert [r.status for r in plan.rows] == ["not selected", "to run", "not selected"] + [
        "not selected"
    ]
    row = plan.rows[1]
    assert (row.dataset, row.iters, row.step) == ("demo", 150, None)  # tiny: no estimate
    assert [m.fix for m in plan.missing if m.kind == "data"] == [
        f"segvit prepare demo --root {data}"
    ]
    assert not [m for m in plan.missing if m.kind == "weights"]  # smoke: built here, not fetched
    assert "--tiny" in next(m.fix for m in plan.missing if m.kind == "measurement")


def test_bad_bench_file_is_one_line(sweep, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"variant": "segvit_b"}))
    with pytest.raises(SegvitError, match=r"bad.json: not a `segvit bench train --save` record"):
        plan_of(sweep, bench_files=[bad])
    with pytest.raises(SegvitError, match="--bench-file .*nowhere.json: no such file"):
        plan_of(sweep, bench_files=[tmp_path / "nowhere.json"])


def test_every_variant_is_counted_on_the_meta_device():
    # The plan sizes every row's model without memory; a builder that reads a tensor's values
    # (Segmenter's drop-path rates did) broke `segvit reproduce all --plan`.
    from segvit.experiments.plan import _param_count
    from segvit.modeling.variants import VARIANTS

    for name in VARIANTS:
        crop = 64 if "swin" in name else 32
        assert _param_count(name, None, 5, crop, True) > 0, name
