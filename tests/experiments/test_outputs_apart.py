"""Outputs that must not land on each other: each recipe's tables in their own folder (a
smoke sweep never over the paper's), each row in its own folder and state."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from segvit.engine.recipe import RECIPES
from segvit.errors import SegvitError
from segvit.experiments.config import RowConfig, load_table
from segvit.experiments.sweep import results_dir_for


def test_every_preset_writes_its_tables_apart_and_only_the_papers_into_results():
    results = Path("results")
    folders = {name: results_dir_for(results, recipe) for name, recipe in RECIPES.items()}
    assert len(set(folders.values())) == len(folders)
    for name, folder in folders.items():
        assert (folder == results) == RECIPES[name].paper_schedule, name
        assert folder == results or folder.parent == results


@given(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12))
def test_a_preset_of_any_name_stays_out_of_the_paper_tables(name):
    recipe = replace(RECIPES["smoke"], name=name)
    assert results_dir_for(Path("results"), recipe) != Path("results")


def _table(tmp_path, names, stem="t1"):
    rows = [{"name": n, "variant": None, "dataset": "ade20k"} for n in names]
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump({"table": stem, "caption": "c", "metrics": ["miou_ss"],
                                    "rows": rows}))  # fmt: skip
    return path


@settings(max_examples=40, deadline=None)
@given(st.text("ab ,.-", min_size=1, max_size=6).filter(lambda s: any(c in s for c in "ab")))
def test_two_rows_whose_names_share_a_folder_are_refused(tmp_path_factory, name):
    twin = "-" + name.upper() + " "  # another spelling of the same slug
    path = _table(tmp_path_factory.mktemp("t"), [name, twin])
    with pytest.raises(SegvitError, match=r"rows\[1\] .* has the name of rows\[0\]"):
        load_table(path)


@given(st.text(min_size=1, max_size=10).filter(str.strip))
def test_every_row_name_has_a_nonempty_folder_name(name):
    slug = RowConfig(name=name, variant=None, dataset="ade20k").slug
    assert slug and "/" not in slug and slug not in (".", "..")
