"""Which dataset a converted release file says it was trained on, read from its class count:
150 ADE20K, 171 COCO-Stuff-10K, 60 PASCAL-Context (the release's "PC59cls" files hold 60
class queries: 59 classes and background), 59 PASCAL-Context without background."""

import pytest

from segvit.modeling.convert import convert_release

SMALL = dict(width=192, heads=3, crop=64)  # segvit's tiny width, a 4x4 token grid


@pytest.mark.parametrize(
    "classes, dataset",
    [(150, "ade20k"), (171, "coco-stuff-10k"), (60, "pascal-context"), (59, "pascal-context-59")],
)
def test_the_class_count_names_the_dataset(fakes, tmp_path, classes, dataset):
    manifest = fakes.shrink(fakes.read_manifest("ade_51.3"), **SMALL, classes=classes)
    path = fakes.write_release(tmp_path / "file.pth", fakes.fake_state(manifest))
    _, meta = convert_release(path)
    assert (meta["num_classes"], meta["trained_on"]) == (classes, dataset)


@pytest.mark.parametrize("name", ["PC59cls_62.3", "PC59cls_64.1"])
def test_the_released_pascal_context_files_are_the_60_class_task(fakes, tmp_path, name):
    manifest = fakes.read_manifest(name)
    small = fakes.shrink(manifest, **SMALL, classes=manifest.classes)
    _, meta = convert_release(
        fakes.write_release(tmp_path / f"{name}.pth", fakes.fake_state(small))
    )
    assert (meta["num_classes"], meta["trained_on"]) == (60, "pascal-context")
