"""The validators at their edges, for every value hypothesis draws: the ignore index against
the class ids (with and without reduce_zero_label), the class count an 8-bit label can hold,
stride and split counts, and YAML booleans where numbers are expected."""

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from segvit.data.dataset_file import DatasetFile, read_dataset_file
from segvit.errors import SegvitError
from segvit.metrics import SegMetric
from segvit.schema import from_mapping


def _file(root: Path, **keys) -> Path:
    for sub in ("im", "lb"):
        (root / sub).mkdir(exist_ok=True)
    content = {
        "name": "edges",
        "classes": ["c0", "c1", "c2"],
        "splits": {
            "train": {"images": "im", "labels": "lb"},
            "val": {"images": "im", "labels": "lb"},
        },
    } | keys
    path = root / "dataset.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("edges")


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), st.booleans(), st.integers(-3, 300))
def test_the_ignore_index_is_accepted_exactly_outside_the_file_ids(root, count, reduce, ignore):
    """File ids are 0..K-1, or 1..K under reduce_zero_label (0 is then the unlabelled id,
    which may be the ignore id); the ignore id must be none of them and fit 8 bits."""
    classes = [f"c{i}" for i in range(count)]
    path = _file(root, classes=classes, reduce_zero_label=reduce, ignore_index=ignore)
    file_ids = range(1, count + 1) if reduce else range(count)
    valid = 0 <= ignore <= 255 and ignore not in file_ids
    if valid:
        spec = read_dataset_file(path)
        assert (spec.ignore_index, spec.reduce_zero_label, spec.num_classes) == (
            ignore, reduce, count
        )  # fmt: skip
    else:
        with pytest.raises(SegvitError, match=rf"{path}: ignore_index: {ignore}"):
            read_dataset_file(path)


@pytest.mark.parametrize("count, ok", [(254, True), (255, True), (256, False), (300, False)])
def test_at_most_255_classes_fit_8_bit_labels_beside_the_ignore_id(root, count, ok):
    path = _file(root, classes=[f"c{i}" for i in range(count)], ignore_index=255)
    if count == 255:  # ids 0..254 and 255 ignored: the fullest 8-bit set
        assert read_dataset_file(path).num_classes == 255
    elif ok:
        assert read_dataset_file(path).num_classes == count
    else:
        with pytest.raises(SegvitError, match=rf"classes: {count} classes; at most 255"):
            read_dataset_file(path)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).map(lambda n: 16 * n), st.integers(-2, 140))
def test_a_stride_is_accepted_from_1_to_the_crop(root, crop, stride):
    path = _file(root, crop=crop, stride=stride)
    if 1 <= stride <= crop:
        assert read_dataset_file(path).stride_for(crop) == stride
    else:
        with pytest.raises(SegvitError, match=rf"stride: {stride}: expected 1 to the crop"):
            read_dataset_file(path)


@pytest.mark.parametrize("count", [0, -1])
def test_a_split_count_must_be_at_least_one(root, count):
    path = _file(root, splits={"train": {"images": "im", "labels": "lb", "count": count},
                               "val": {"images": "im", "labels": "lb"}})  # fmt: skip
    with pytest.raises(SegvitError, match=rf"splits.train.count: {count}: expected at least 1"):
        read_dataset_file(path)


@pytest.mark.parametrize("crop", [0, -16, 8, 15])
def test_a_crop_must_be_at_least_16(root, crop):
    with pytest.raises(SegvitError, match=rf"crop: {crop}: expected at least 16"):
        read_dataset_file(_file(root, crop=crop))


@pytest.mark.parametrize("crop", [16, 100, 518, 4096])
def test_a_crop_only_some_backbones_take_is_read(root, crop):
    # 518 = 37 patches of 14: DINOv2's crop. Whether the model takes it is checked when the
    # model is chosen (tests/experiments/test_spec.py).
    assert read_dataset_file(_file(root, crop=crop)).crop == crop


INT_KEYS = [f.name for f in dataclasses.fields(DatasetFile) if f.type in ("int", "int | None")]


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", [True, False])
def test_yaml_booleans_are_not_integers(root, key, value):
    path = _file(root, **{key: value})
    with pytest.raises(SegvitError, match=rf"{key}: expected int( \| None)?, got {value}"):
        read_dataset_file(path)
    split = {"images": "im", "labels": "lb", "count": value}
    path = _file(root, splits={"train": split, "val": dict(split)})  # no YAML alias
    with pytest.raises(SegvitError, match=r"splits.train.count: expected int \| None"):
        read_dataset_file(path)


@dataclasses.dataclass(frozen=True)
class Numbers:
    count: int
    share: float
    maybe: int | None = None


@given(st.sampled_from(["count", "share", "maybe"]), st.booleans())
def test_the_strict_loader_refuses_booleans_for_any_number(key, value):
    data = {"count": 1, "share": 0.5} | {key: value}
    with pytest.raises(SegvitError, match=rf"f.yaml: {key}: expected .*, got {value}"):
        from_mapping(Numbers, data, source="f.yaml")


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6))
def test_the_strict_loader_keeps_numbers_as_given(count, share):
    got = from_mapping(Numbers, {"count": count, "share": share}, source="f.yaml")
    assert got == Numbers(count, float(share)) and type(got.share) is float


@given(st.integers(1, 20), st.integers(0, 25))
def test_a_metric_accepts_label_ids_below_the_class_count_only(classes, label):
    metric = SegMetric(num_classes=classes, ignore_index=255)
    pred = torch.zeros(2, 2, dtype=torch.long)
    if label < classes:
        metric.update(pred, torch.full((2, 2), label))
        assert int(metric.confusion.sum()) == 4
    else:
        with pytest.raises(SegvitError, match=r"label values must lie in \[0, "):
            metric.update(pred, torch.full((2, 2), label))
