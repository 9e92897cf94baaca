"""`segvit reproduce --plan` through the real entry point: tables or JSON, nothing run."""

import json

import pytest

RECORD = {
    "variant": "segvit_shrunk_b", "dataset": "ade20k", "crop": 512, "batch": 2, "tiny": False,
    "device": "cuda (NVIDIA H100 80GB HBM3)", "dtype": "bfloat16 autocast",
    "seconds_per_iter": 0.4, "measured_at": "2025-05-01T12:00:00+00:00", "host": "gpu-07",
}  # fmt: skip


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "weights"))
    record = tmp_path / "h100.json"
    record.write_text(json.dumps(RECORD))
    return tmp_path / "runs", tmp_path / "data", record


def test_plan_as_json(cli, places):
    runs, data, record = places
    code, out, _ = cli("reproduce", "table8", "--plan", "--json", "--gpus", "8", "--runs", runs,
                       "--data-root", data, "--bench-file", record, "--rows", "4")  # fmt: skip
    assert code == 0
    plan = json.loads(out)
    assert [r["status"] for r in plan["rows"]] == ["not selected"] * 3 + ["to run"]
    row = plan["rows"][3]
    assert row["step"]["measured"] and row["step"]["seconds_per_image"] == 0.2
    assert plan["gpu_hours"] == pytest.approx(160_000 * 16 * 0.2 / 3600)
    assert plan["wall_hours"] == pytest.approx(plan["gpu_hours"] / 8)
    assert plan["launch"] == {"gpus": 8, "nnodes": 1, "node_rank": None,
                              "rdzv_endpoint": None, "rdzv_id": "segvit"}  # fmt: skip
    assert [m["kind"] for m in plan["missing"]] == ["data", "weights"]
    assert not runs.exists()  # planning writes nothing


def test_plan_as_tables(cli, places):
    runs, data, record = places
    code, out, _ = cli("reproduce", "table8", "--plan", "--gpus", "8", "--runs", runs,
                       "--data-root", data, "--bench-file", record)  # fmt: skip
    assert code == 0
    for text in (
        "table8: 4 of 4 rows to run", "assumed [1]", "measured [4]", "2025-05-01T12:00:00+00:00",
        "GPU-hours estimated", f"segvit prepare ade20k --root {data}", "huggingface.co/timm",
        "segvit bench train setr_b --dataset ade20k --crop 512 --batch 2 --save",
    ):  # fmt: skip
        assert text in out, text


def test_several_nodes_need_an_endpoint(cli):
    code, _, err = cli("reproduce", "table8", "--plan", "--nnodes", "2")
    assert code == 1
    assert err.strip() == "error: --nnodes 2: also pass --node-rank and --rdzv-endpoint HOST:PORT"
