"""Where `segvit eval` writes: named by what changes the scores, never over another run's."""

import json

import pytest

from segvit.engine.eval_output import beside, eval_output, results_name
from segvit.engine.evaluate import EvalSettings
from segvit.errors import SegvitError


def test_the_name_says_what_changes_the_scores():
    assert results_name("runs/a/best.pt", "ade20k", EvalSettings()) == "eval_best_ade20k_ss"
    settings = EvalSettings(mode="whole", multi_scale=True, stride=100, max_images=2)
    assert results_name("last.pt", "demo", settings) == "eval_last_demo_ms_whole_stride100_first2"
    assert results_name("release:ade_51.3", "ade20k", EvalSettings()) == "eval_ade20k_ss"
    assert beside("release:ade_51.3") == beside("runs/release/ade_51.3/x.pt")


def test_a_default_file_of_another_data_root_is_kept(tmp_path):
    weights = tmp_path / "best.pt"
    path = eval_output(None, str(weights), "demo", EvalSettings(), data_root="/a")
    assert path == tmp_path / "eval_best_demo_ss.json"
    path.write_text(json.dumps({"data_root": "/b"}))
    with pytest.raises(SegvitError, match="holds scores of /b, not /a; pass --out"):
        eval_output(None, str(weights), "demo", EvalSettings(), data_root="/a")
    mine = tmp_path / "mine.json"
    assert eval_output(mine, str(weights), "demo", EvalSettings(), data_root="/a") == mine
