"""The planted-bug lists (scripts/mutants) stay in step with the code: each bug's original
text occurs exactly once in its file, and its area names test files that exist. A refactor
that moves the text makes a mutant stale, and the runner then refuses to run its whole set."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "mutants"))

import run  # noqa: E402  (scripts/mutants is not a package)


@pytest.mark.parametrize("name", run.SETS)
def test_every_planted_bug_still_applies(name, monkeypatch):
    import importlib

    monkeypatch.chdir(ROOT)
    chosen = list(enumerate(importlib.import_module(name).MUTANTS, start=1))
    assert chosen
    assert run.stale(chosen) == []
    for area in {m.area for _, m in chosen}:
        missing = [t for t in run.AREA_TESTS[area] if not (ROOT / t).is_file()]
        assert not missing, (area, missing)
