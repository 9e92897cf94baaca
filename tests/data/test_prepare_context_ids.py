"""PASCAL-Context from the Detail API: a class id that is none of the 59 (or past the
459-class table) stops the preparation in one line naming it, rather than becoming
background."""

import json

import pytest

from segvit.data import prepare
from segvit.data.catalog import DATASETS
from segvit.errors import SegvitError


@pytest.mark.parametrize("category", [431, 600], ids=["not-of-the-59", "past-the-table"])
def test_an_id_outside_the_59_is_refused(tmp_path, build, small_counts, category):
    small_counts("pascal-context", 2, 2)
    train, val = build.voc_stems(2, 2)
    src = tmp_path / "src"
    src.mkdir()
    build.make_voc_tar(src / "VOCtrainval_03-May-2010.tar", train, val)
    detail = build.make_detail_json(src / "trainval_merged.json", train, val)
    data = json.loads(detail.read_text())
    data["annos_segmentation"][1]["category_id"] = category  # the first image's top band
    detail.write_text(json.dumps(data))
    with pytest.raises(SegvitError, match=rf"class ids \[{category}\] outside the 59"):
        prepare.prepare_dataset(
            DATASETS["pascal-context"], src=src, root=tmp_path / "data", progress=False
        )
