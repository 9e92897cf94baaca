"""`segvit bench train` through the real entry point."""

import json

import pytest
import torch

TINY = ("--tiny", "--crop", "64", "--batch", "2", "--steps", "2", "--warmup", "1", "--threads", "1")


def test_json_has_the_documented_keys(cli):
    code, out, _ = cli("bench", "train", "segvit_b", "--dataset", "demo", *TINY, "--json")
    assert code == 0
    report = json.loads(out)
    keys = {
        "variant", "dataset", "crop", "batch", "device", "dtype", "seconds_per_iter",
        "images_per_second", "peak_memory_mb", "memory_kind", "params_m", "schedule_hours",
    }  # fmt: skip
    assert keys <= report.keys()
    assert (report["variant"], report["dataset"], report["crop"]) == ("segvit_b", "demo", 64)
    assert report["batch"] == 2 and report["seconds_per_iter"] > 0


def test_table_shows_the_figures(cli):
    code, out, _ = cli("bench", "train", "setr_b", "--device", "cpu", *TINY)
    assert code == 0
    for label in ("seconds / iteration", "images / second", "peak memory", "float32"):
        assert label in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_is_one_line(cli):
    code, _, err = cli("bench", "train", "segvit_b", "--device", "cuda", *TINY)
    assert code == 1
    assert err.strip() == "error: --device cuda: CUDA is not available on this machine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("segvit_xl",), "error: unknown variant 'segvit_xl'"),
        (("segvit_b", "--crop", "500"), "error: --crop 500: expected a positive multiple of 16"),
        (("segvit_b", "--steps", "0"), "error: --steps must be > 0"),
    ],
)
def test_bad_input_is_one_line(cli, args, message):
    code, _, err = cli("bench", "train", *args)
    assert code == 1
    assert err.strip().startswith(message)
    assert len(err.strip().splitlines()) == 1


def test_save_writes_a_record_the_plan_reads(cli, tmp_path):
    code, out, _ = cli("bench", "train", "setr_b", "--dataset", "demo", *TINY, "--save",
                       "--runs", tmp_path)  # fmt: skip
    assert code == 0
    (path,) = (tmp_path / "bench").glob("*.json")
    assert f"saved {path}" in out.replace("\n", "")
    record = json.loads(path.read_text())
    assert (record["variant"], record["crop"], record["batch"]) == ("setr_b", 64, 2)
    assert {"measured_at", "host", "torch", "model_gflops", "mfu"} <= record.keys()
    for label in ("forward GFLOPs per image", "training TFLOP/s", "MFU", "no peak for CPUs"):
        assert label in out
