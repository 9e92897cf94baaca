"""Every dataset the toolkit knows, one `DatasetSpec` each: classes, layout, splits, scales.

One small explicit table. The readers, transforms, evaluation and the experiment spec look a
dataset up here once (`get_dataset`) and pass the spec down; nothing below asks by name again.
Training schedules are not data facts: they live in the recipes (segvit.engine.recipe).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segvit.errors import SegvitError

# References: SegViT release configs (mmsegmentation 0.24) for crops, base scales and slide
# strides; mmsegmentation's dataset classes for layouts, splits and reduce_zero_label.


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int  # classes the model predicts (after reduce_zero_label)
    crop: int  # the paper's training crop and sliding window for ViT-B models
    crop_large: int  # the same for ViT-L models (ADE20K trains ViT-L at 640)
    base_scale: tuple[int, int]  # (long, short) resize target before scaling / testing
    reduce_zero_label: bool  # label 0 -> 255 (ignored), the rest shift down by one
    layout: str  # folder layout on disk, see segvit.data.datasets
    train_split: str
    val_split: str
    num_train: int  # images per split in the official release, verified by `segvit prepare`
    num_val: int
    # The paper's sliding-window stride and base scale for each crop it uses; other crops get
    # 2/3 of the crop and `base_scale` (see stride_for / base_scale_for).
    strides: dict[int, int] = field(default_factory=dict)
    base_scales: dict[int, tuple[int, int]] = field(default_factory=dict)

    def crop_for(self, large: bool) -> int:
        """The paper's crop for a ViT-B (False) or ViT-L (True) model."""
        return self.crop_large if large else self.crop

    def stride_for(self, crop: int) -> int:
        """Sliding-window stride at `crop`: the paper's where it has one, else 2/3 of it."""
        return self.strides.get(crop, max(1, crop * 2 // 3))

    def base_scale_for(self, crop: int) -> tuple[int, int]:
        return self.base_scales.get(crop, self.base_scale)

    @property
    def class_names(self) -> tuple[str, ...]:
        from segvit.data.classes import class_names  # the long name tables stay apart

        return class_names(self.name)


_ADE_LAYOUT = dict(layout="ade20k", train_split="training", val_split="validation")
_PC = dict(
    crop=480, crop_large=480, base_scale=(520, 520), layout="pascal-context",
    train_split="train", val_split="val", num_train=4996, num_val=5104, strides={480: 320},
)  # fmt: skip

DATASETS: dict[str, DatasetSpec] = {
    "ade20k": DatasetSpec(
        name="ade20k", num_classes=150, crop=512, crop_large=640, base_scale=(2048, 512),
        reduce_zero_label=True, num_train=20210, num_val=2000, **_ADE_LAYOUT,
        strides={512: 341, 640: 608}, base_scales={640: (2048, 640)},
    ),
    "coco-stuff-10k": DatasetSpec(
        name="coco-stuff-10k", num_classes=171, crop=512, crop_large=512,
        base_scale=(2048, 512), reduce_zero_label=True, layout="coco-stuff-10k",
        train_split="train2014", val_split="test2014", num_train=9000, num_val=1000,
        strides={512: 341},
    ),
    "pascal-context": DatasetSpec(
        name="pascal-context", num_classes=60, reduce_zero_label=False, **_PC
    ),
    "pascal-context-59": DatasetSpec(
        name="pascal-context-59", num_classes=59, reduce_zero_label=True, **_PC
    ),
    # The embedded demo set (segvit.data.demo): ADE20K's layout and label convention, small
    # images, so the very same code paths run on a CPU in minutes.
    "demo": DatasetSpec(
        name="demo", num_classes=8, crop=128, crop_large=128, base_scale=(512, 128),
        reduce_zero_label=True, num_train=400, num_val=50, **_ADE_LAYOUT, strides={128: 85},
    ),
}  # fmt: skip


def get_dataset(name: str) -> DatasetSpec:
    """The DatasetSpec for `name`, or a one-line error listing the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SegvitError(
            f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}"
        ) from None
