"""A dataset spec survives every way it is written and read back, field by field: the dataset
file (`write_dataset_file` -> `read_dataset_file`) and the record a checkpoint keeps
(`to_record` -> `from_record`), for any valid spec hypothesis draws, built-in sets included."""

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segvit.data.catalog import DATASETS
from segvit.data.dataset_file import read_dataset_file, write_dataset_file
from segvit.data.info import DatasetSpec, Schedule, Split

FIELDS = [f.name for f in dataclasses.fields(DatasetSpec)]
names = st.text("abcxyz019_-.", min_size=1, max_size=8).filter(lambda s: s[0].isalnum())
crops = st.integers(1, 64).map(lambda n: 16 * n)


@st.composite
def file_specs(draw) -> DatasetSpec:
    """A spec a dataset file can describe: one stride and base scale, at its own crop."""
    count = draw(st.integers(1, 40))
    classes = tuple(draw(st.lists(names, min_size=count, max_size=count, unique=True)))
    reduce = draw(st.booleans())
    top = count if reduce else count - 1  # the largest id a label file holds
    ignore = draw(st.sampled_from([i for i in range(top + 1, 256)] + ([0] if reduce else [])))
    crop = draw(crops)
    suffix = draw(st.sampled_from([".png", "_mask.png", ".PNG", "_labelTrainIds.png"]))

    def split(images: str, labels: str) -> Split:
        listing = draw(st.sampled_from([None, f"{images}.txt"]))
        return Split(images, labels, listing, suffix, draw(st.none() | st.integers(1, 10**6)))

    return DatasetSpec(
        name=draw(names), classes=classes, crop=crop,
        train=split("img_train", "lab_train"), val=split("img_val", "lab_val"),
        base_scale=draw(st.none() | st.tuples(st.integers(1, 4096), st.integers(1, 4096))),
        reduce_zero_label=reduce, ignore_index=ignore,
        palette=draw(st.none() | st.lists(
            st.tuples(*[st.integers(0, 255)] * 3), min_size=count, max_size=count).map(tuple)),
        strides=draw(st.none() | st.integers(1, crop).map(lambda s: {crop: s})) or {},
        folder=".",
    )  # fmt: skip


def _write_and_read(spec: DatasetSpec, folder: Path) -> DatasetSpec:
    for split in (spec.train, spec.val):
        for sub in (split.images, split.labels):
            (folder / sub).mkdir(exist_ok=True)
        if split.listing:
            (folder / split.listing).write_text("a\n")
    path = folder / "dataset.yaml"
    write_dataset_file(path, spec)
    return read_dataset_file(path)


def _assert_same(got: DatasetSpec, want: DatasetSpec, skip: tuple[str, ...] = ()) -> None:
    for name in FIELDS:
        if name not in skip:
            assert getattr(got, name) == getattr(want, name), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file_specs())
def test_a_dataset_file_reads_back_what_was_written(spec):
    with tempfile.TemporaryDirectory() as tmp:
        back = _write_and_read(spec, Path(tmp))
        assert back.source == str(Path(tmp).absolute() / "dataset.yaml")
    _assert_same(back, spec, skip=("source",))
    # What the models use follows: the stride and base scale at the file's crop.
    assert back.stride_for(spec.crop) == spec.stride_for(spec.crop)
    assert back.base_scale_for(spec.crop) == spec.base_scale_for(spec.crop)


@settings(max_examples=80, deadline=None)
@given(
    file_specs(),
    st.dictionaries(crops, st.integers(1, 2048), max_size=3),
    st.dictionaries(crops, st.tuples(st.integers(1, 4096), st.integers(1, 4096)), max_size=3),
    st.none() | st.integers(1, 2048),
    st.none() | st.builds(Schedule, st.integers(1, 10**6), st.floats(0, 1), st.floats(0.5, 3)),
    st.none() | crops,
    st.none() | st.integers(0, 40),
)
def test_a_checkpoint_record_reads_back_every_field(
    spec, strides, base_scales, min_size, schedule, crop_large, background
):
    spec = dataclasses.replace(
        spec, strides=spec.strides | strides, base_scales=base_scales, test_min_size=min_size,
        paper_schedule=schedule, crop_large=crop_large, background=background,
        source="/somewhere/dataset.yaml", preparation=DATASETS["ade20k"].preparation,
    )  # fmt: skip
    back = DatasetSpec.from_record(spec.to_record())
    _assert_same(back, spec)
    for crop in {spec.crop, *strides, *base_scales}:  # per-crop tables keyed by int crops
        assert back.stride_for(crop) == spec.stride_for(crop)
        assert back.base_scale_for(crop) == spec.base_scale_for(crop)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_built_in_specs_survive_a_checkpoint_record(name):
    spec = DATASETS[name]
    back = DatasetSpec.from_record(spec.to_record())
    _assert_same(back, spec)
    assert back == spec and back.colours.tolist() == spec.colours.tolist()


def test_a_file_spec_holding_strides_for_other_crops_is_refused_not_cut(tmp_path):
    """A dataset file states one stride, at its crop; a spec with more cannot be written
    without losing some, so writing it fails instead."""
    from segvit.errors import SegvitError

    spec = dataclasses.replace(DATASETS["ade20k"], preparation=None)
    with pytest.raises(SegvitError, match="ade20k cannot be written as a dataset file"):
        write_dataset_file(tmp_path / "d.yaml", spec)
    assert not (tmp_path / "d.yaml").exists()
