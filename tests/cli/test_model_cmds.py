"""`segvit flops` and `segvit variants` through the real entry point."""

import json


def test_flops_json_has_the_documented_keys(cli):
    code, out, _ = cli("flops", "setr_b", "--dataset", "demo", "--crop", "64", "--json")
    assert code == 0
    report = json.loads(out)
    keys = {"variant", "dataset", "crop", "gflops", "backbone_gflops", "head_gflops", "params_m"}
    assert keys <= report.keys()
    assert report["variant"] == "setr_b" and report["crop"] == 64


def test_unknown_variant_is_one_line(cli):
    code, _, err = cli("flops", "segvit_xl")
    assert code == 1
    assert err.strip().startswith("error: unknown variant 'segvit_xl'")
    assert len(err.strip().splitlines()) == 1


def test_bad_crop_is_one_line(cli):
    code, _, err = cli("flops", "segvit_b", "--crop", "500")
    assert code == 1
    assert "--crop 500: expected a positive multiple of 16" in err


def test_variants_lists_the_table8_rows(cli):
    code, out, _ = cli("variants")
    assert code == 0
    for name in ("setr_b", "atm_single_b", "naive_shrunk_b", "segvit_shrunk_b"):
        assert name in out
