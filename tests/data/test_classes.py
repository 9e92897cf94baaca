import numpy as np
import pytest

from segvit.data import classes
from segvit.data.catalog import DATASETS, load_dataset
from segvit.errors import SegvitError


@pytest.mark.parametrize("name", list(DATASETS))
def test_names_and_palette_match_the_class_count(name):
    names = DATASETS[name].classes
    assert len(names) == DATASETS[name].num_classes
    assert len(set(names)) == len(names)
    colours = DATASETS[name].colours
    assert colours.shape == (len(names), 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == len(names)  # every class visible on its own


def test_pascal_context_variants():
    sixty, fifty_nine = DATASETS["pascal-context"], DATASETS["pascal-context-59"]
    assert sixty.classes[0] == "background" and sixty.background == 0
    assert fifty_nine.classes == sixty.classes[1:] and fifty_nine.background is None
    # The same class keeps its colour in both variants; background is black.
    assert (sixty.colours[1:] == fifty_nine.colours).all()
    assert sixty.colours[0].tolist() == [0, 0, 0]


def test_pascal_context_ids_are_the_alphabetical_459_ids():
    ids = classes.PASCAL_CONTEXT_IDS
    assert len(ids) == 60 and list(ids) == sorted(ids) and ids[0] == 0
    named = dict(zip(classes.PASCAL_CONTEXT, ids, strict=True))
    assert named["aeroplane"] == 2 and named["person"] == 284 and named["wood"] == 458
    assert list(classes.PASCAL_CONTEXT[1:]) == sorted(classes.PASCAL_CONTEXT[1:])


def test_coco_stuff_ids_skip_the_unused_coco_ids():
    ids = classes.COCO_STUFF_IDS
    assert len(ids) == 171 and ids[:12] == tuple(range(1, 12)) + (13,)
    named = dict(zip(classes.COCO_STUFF, ids, strict=True))
    assert named["person"] == 1 and named["toothbrush"] == 90
    assert named["banner"] == 92 and named["wood"] == 182
    assert not {12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91} & set(ids)


def test_ade20k_order_anchors():
    names = DATASETS["ade20k"].classes
    assert names[:3] == ("wall", "building", "sky") and names[-1] == "flag"
    assert names.index("person") == 12


def test_bit_palette_is_the_voc_colour_map():
    colours = classes.bit_palette(4)
    assert colours.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]


def test_unknown_dataset_is_one_clear_error():
    with pytest.raises(SegvitError, match="cityscapes.*expected one of.*or a dataset file"):
        load_dataset("cityscapes")
