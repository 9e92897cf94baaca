"""The facts of each dataset the toolkit knows: class count, crops, scales, label convention.

One small explicit table; the readers, transforms, models and evaluation all look here.
"""

from __future__ import annotations

from dataclasses import dataclass

from segvit.errors import SegvitError

# References: SegViT release configs (mmsegmentation 0.24) for crops, scales and strides.


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int  # classes the model predicts (after reduce_zero_label)
    crop: int  # training crop and sliding-window size for ViT-B models
    crop_large: int  # the same for ViT-L models (ADE20K trains ViT-L at 640)
    base_scale: tuple[int, int]  # (long, short) resize target before random scaling / testing
    base_scale_large: tuple[int, int]  # base scale for the ViT-L crop
    slide_stride: int  # sliding-window stride for `crop`
    slide_stride_large: int  # sliding-window stride for `crop_large`
    reduce_zero_label: bool  # label 0 -> 255 (ignored), the rest shift down by one
    layout: str  # folder layout on disk, see segvit.data.datasets
    train_split: str
    val_split: str
    num_train: int  # images per split in the official release, verified by `segvit prepare`
    num_val: int
    weight_decay: float  # AdamW weight decay of the paper's recipe
    poly_power: float  # poly learning-rate decay power
    iters: int  # training iterations of the paper's recipe

    def crop_for(self, large: bool) -> int:
        return self.crop_large if large else self.crop

    def stride_for(self, crop: int) -> int:
        return self.slide_stride_large if crop == self.crop_large else self.slide_stride

    def base_scale_for(self, crop: int) -> tuple[int, int]:
        return self.base_scale_large if crop == self.crop_large else self.base_scale


DATASETS: dict[str, DatasetInfo] = {
    "ade20k": DatasetInfo(
        name="ade20k",
        num_classes=150,
        crop=512,
        crop_large=640,
        base_scale=(2048, 512),
        base_scale_large=(2048, 640),
        slide_stride=341,
        slide_stride_large=608,
        reduce_zero_label=True,
        layout="ade20k",
        train_split="training",
        val_split="validation",
        num_train=20210,
        num_val=2000,
        weight_decay=0.01,
        poly_power=1.0,
        iters=160_000,
    ),
    "coco-stuff-10k": DatasetInfo(
        name="coco-stuff-10k",
        num_classes=171,
        crop=512,
        crop_large=512,
        base_scale=(2048, 512),
        base_scale_large=(2048, 512),
        slide_stride=341,
        slide_stride_large=341,
        reduce_zero_label=True,
        layout="coco-stuff-10k",
        train_split="train2014",
        val_split="test2014",
        num_train=9000,
        num_val=1000,
        weight_decay=0.02,
        poly_power=2.0,
        iters=80_000,
    ),
    "pascal-context": DatasetInfo(
        name="pascal-context",
        num_classes=60,
        crop=480,
        crop_large=480,
        base_scale=(520, 520),
        base_scale_large=(520, 520),
        slide_stride=320,
        slide_stride_large=320,
        reduce_zero_label=False,
        layout="pascal-context",
        train_split="train",
        val_split="val",
        num_train=4996,
        num_val=5104,
        weight_decay=0.03,
        poly_power=1.0,
        iters=80_000,
    ),
    "pascal-context-59": DatasetInfo(
        name="pascal-context-59",
        num_classes=59,
        crop=480,
        crop_large=480,
        base_scale=(520, 520),
        base_scale_large=(520, 520),
        slide_stride=320,
        slide_stride_large=320,
        reduce_zero_label=True,
        layout="pascal-context",
        train_split="train",
        val_split="val",
        num_train=4996,
        num_val=5104,
        weight_decay=0.03,
        poly_power=1.0,
        iters=80_000,
    ),
    # The embedded demo set (segvit.data.demo): ADE20K's layout and label convention, small
    # images, so the very same code paths run on a CPU in minutes.
    "demo": DatasetInfo(
        name="demo",
        num_classes=8,
        crop=128,
        crop_large=128,
        base_scale=(512, 128),
        base_scale_large=(512, 128),
        slide_stride=85,
        slide_stride_large=85,
        reduce_zero_label=True,
        layout="ade20k",
        train_split="training",
        val_split="validation",
        num_train=400,
        num_val=50,
        weight_decay=0.01,
        poly_power=1.0,
        iters=1000,
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo for `name`, or a one-line error listing the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SegvitError(
            f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}"
        ) from None
