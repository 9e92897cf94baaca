"""The datasets segvit knows by name (the paper's three and the demo set), and `--dataset`'s
resolution: a built-in name or a dataset file, looked up once into a `DatasetSpec`.
"""

from __future__ import annotations

from pathlib import Path

from segvit.data import prepare
from segvit.data.dataset_file import read_dataset_file
from segvit.data.demo import generate_demo
from segvit.data.info import Archive, DatasetSpec, Download, Preparation, Schedule, Split
from segvit.errors import SegvitError

# References: SegViT release configs (mmsegmentation 0.24) for crops, base scales, slide
# strides and the per-dataset schedules (iterations, weight decay, poly power); mmsegmentation's
# dataset classes for layouts, splits and reduce_zero_label; checksums as published with the
# GluonCV / PyTorch-Encoding dataset scripts (SHA-1 of ADEChallengeData2016.zip,
# VOCtrainval_03-May-2010.tar, trainval_merged.json).

# How `segvit prepare` makes each built-in tree (PASCAL-Context's two specs share one).
ADE20K = Preparation(
    "ade20k",
    {"main": Archive(
        ("ADEChallengeData2016.zip", "ADEChallengeData2016"),
        Download("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
                 "ADEChallengeData2016.zip", "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7", 0.92),
        holds="images/training",
    )},
    tree_gb=1.0, build=prepare.build_ade20k,
)  # fmt: skip
COCO_STUFF_10K = Preparation(
    "coco-stuff-10k",
    {"main": Archive(
        ("cocostuff-10k-v1.1.zip", "cocostuff-10k-v1.1"),
        Download("http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/"
                 "cocostuff-10k-v1.1.zip", "cocostuff-10k-v1.1.zip", None, 2.0),
        holds="imageLists/train.txt",
    )},
    tree_gb=2.0, build=prepare.build_coco_stuff,
)  # fmt: skip
PASCAL_CONTEXT = Preparation(
    "pascal-context",
    {
        "main": Archive(
            ("VOCtrainval_03-May-2010.tar", "VOCdevkit/VOC2010", "VOC2010"),
            Download("http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
                     "VOCtrainval_03-May-2010.tar", "bf9985e9f2b064752bf6bd654d89f017c76c395a",
                     1.3),
            holds="JPEGImages",
        ),
        "context": Archive(
            ("trainval_merged.json", "VOCdevkit/VOC2010/trainval_merged.json", "trainval.tar.gz",
             "trainval"),
            Download("https://codalabuser.blob.core.windows.net/public/trainval_merged.json",
                     "trainval_merged.json", "169325d9f7e9047537fedca7b04de4dddf10b881", None,
                     "the PASCAL-Context labels of the Detail API"),
            suffixes=(".json",),
        ),
    },
    tree_gb=1.4, in_place=True, build=prepare.build_pascal_context,
)  # fmt: skip
DEMO = Preparation("demo", tree_gb=0.01, generate=generate_demo)  # written by segvit.data.demo


def _ade_layout(count_train: int, count_val: int) -> dict[str, Split]:
    """mmsegmentation's ADE20K layout: images/ and annotations/ with one folder per split."""
    return {
        "train": Split("images/training", "annotations/training", count=count_train),
        "val": Split("images/validation", "annotations/validation", count=count_val),
    }


def _pascal_context(name: str, classes: tuple[str, ...], reduce_zero_label: bool) -> DatasetSpec:
    def split(phase: str, count: int) -> Split:
        listing = f"ImageSets/SegmentationContext/{phase}.txt"
        return Split("JPEGImages", "SegmentationClassContext", listing, count=count)

    return DatasetSpec(
        name=name, classes=classes, train=split("train", 4996), val=split("val", 5104),
        crop=480, base_scale=(520, 520), reduce_zero_label=reduce_zero_label,
        strides={480: 320}, test_min_size=480, background=0 if not reduce_zero_label else None,
        paper_schedule=Schedule(80_000, 0.03, 1.0), folder="VOCdevkit/VOC2010",
        preparation=PASCAL_CONTEXT,
    )  # fmt: skip


def _builtins() -> dict[str, DatasetSpec]:
    from segvit.data import classes as names

    return {
        "ade20k": DatasetSpec(
            name="ade20k", classes=names.ADE20K, **_ade_layout(20210, 2000), crop=512,
            crop_large=640, base_scale=(2048, 512), reduce_zero_label=True,
            strides={512: 341, 640: 608}, base_scales={640: (2048, 640)},
            paper_schedule=Schedule(160_000, 0.01, 1.0), folder="ade/ADEChallengeData2016",
            preparation=ADE20K,
        ),
        "coco-stuff-10k": DatasetSpec(
            name="coco-stuff-10k", classes=names.COCO_STUFF,
            train=Split("images/train2014", "annotations/train2014",
                        label_suffix="_labelTrainIds.png", count=9000),
            val=Split("images/test2014", "annotations/test2014",
                      label_suffix="_labelTrainIds.png", count=1000),
            crop=512, base_scale=(2048, 512), reduce_zero_label=True, strides={512: 341},
            test_min_size=512, paper_schedule=Schedule(80_000, 0.02, 2.0), folder="coco_stuff10k",
            preparation=COCO_STUFF_10K,
        ),
        "pascal-context": _pascal_context("pascal-context", names.PASCAL_CONTEXT, False),
        "pascal-context-59": _pascal_context(
            "pascal-context-59", names.PASCAL_CONTEXT[1:], True
        ),
        # The embedded demo set (segvit.data.demo): ADE20K's layout and label convention,
        # small images, so the very same code paths run on a CPU in minutes. Its paper
        # schedule is not the paper's: the paper recipe on the demo set, for tests.
        "demo": DatasetSpec(
            name="demo", classes=names.DEMO, **_ade_layout(400, 50), crop=128,
            base_scale=(512, 128), reduce_zero_label=True, strides={128: 85},
            palette=names.DEMO_PALETTE, paper_schedule=Schedule(1000, 0.01, 1.0),
            folder="demo", preparation=DEMO,
        ),
    }  # fmt: skip


DATASETS: dict[str, DatasetSpec] = _builtins()


def get_dataset(name: str) -> DatasetSpec:
    """The built-in DatasetSpec `name`, or a one-line error listing the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SegvitError(
            f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}, or a dataset "
            "file (.yaml)"
        ) from None


def load_dataset(name_or_file: str | Path) -> DatasetSpec:
    """`--dataset`'s value: a built-in name, or the path of a dataset file."""
    text = str(name_or_file)
    if text in DATASETS:
        return DATASETS[text]
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return read_dataset_file(Path(text))
    return get_dataset(text)
