"""How a model is trained: one `Recipe` dataclass, and its named instances.

The paper's recipe and the CPU-sized smoke recipe are two instances of the same dataclass;
the paper's per-dataset schedule (iterations, weight decay, poly power) is applied by
`get_recipe`. The training engine, `segvit bench train` and `segvit reproduce` all read a
Recipe; a command-line override is a typed `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segvit.errors import SegvitError

# References: SegViT release configs (mmseg 0.24 IterBasedRunner: AdamW lr 2e-5 with the head
# at x10, 1,500 linear warm-up iterations, poly decay, batch 16, grad clip 35, evaluation
# every 4,000 iterations); docs/architecture.md, "Data and training".


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights a training run ends with, apart from the model
    and the data. Defaults are the paper's ADE20K recipe."""

    name: str = "paper"  # how results and run folders name it
    dataset: str | None = None  # a dataset this recipe always uses (smoke: demo); None: any
    tiny: bool = False  # width-192 ViTs of the same depth (CPU smoke runs)
    pretrained: str | None = "hub"  # backbone init: "hub" (AugReg), "smoke" (the tiny ViT
    # pretrained on the demo set, segvit.experiments.smoke_backbone), a weights file, or None
    iters: int = 160_000  # optimizer steps (paper: 160k ADE20K, 80k COCO-Stuff-10K and PC)
    batch: int = 16  # images per optimizer step over all processes (paper: 16)
    device_batch: int | None = None  # images per forward on one device; None: batch / world
    # size. Smaller values accumulate gradients over batch / (world size * device_batch) steps.
    lr: float = 2e-5  # AdamW learning rate of the backbone
    head_lr_mult: float = 10.0  # the head trains at lr x this
    weight_decay: float = 0.01  # AdamW decay (paper: 0.01 ADE20K, 0.02 COCO, 0.03 PC)
    warmup_iters: int = 1500  # linear warm-up length
    warmup_ratio: float = 1e-6  # warm-up starts at lr x this
    power: float = 1.0  # poly decay power (paper: 2.0 on COCO-Stuff)
    min_lr: float = 0.0  # poly decays to this
    clip_grad: float = 35.0  # gradients are clipped to this global L2 norm
    amp: bool = True  # mixed precision autocast on CUDA; a CPU always runs in float32
    amp_dtype: str = "bfloat16"  # "bfloat16", or "float16" (with a GradScaler) for old GPUs
    seed: int = 0  # seeds the weights, the data order and every augmentation
    release_decay_rule: bool = True  # the release's weight decay: pos_embed, the queries and
    # the head's norms decay too (mmcv custom_keys); False exempts them (timm/DETR practice).
    mask_loss_excludes_ignored: bool = False  # False: pixels labelled 255 are background in
    # every ATM mask target, as the release builds them (`label == class`); True leaves them
    # out of the focal and dice terms.
    eval_interval: int = 4000  # iterations between evaluations (and at the end)
    checkpoint_interval: int = 2000  # iterations between saves (and at the end); a resumed
    # run repeats at most this many. The release saves every 16,000.
    log_interval: int = 50  # iterations between log.jsonl records (losses averaged)
    eval_max_images: int | None = None  # evaluate only the first N images (None: all)

    def __post_init__(self) -> None:
        checks = (
            ("iters", self.iters > 0, "> 0"),
            ("batch", self.batch > 0, "> 0"),
            ("device_batch", self.device_batch is None or self.device_batch > 0, "None or > 0"),
            ("lr", self.lr > 0, "> 0"),
            ("clip_grad", self.clip_grad > 0, "> 0"),
            ("amp_dtype", self.amp_dtype in ("bfloat16", "float16"), "bfloat16 or float16"),
            ("log_interval", self.log_interval > 0, "> 0"),
            ("eval_interval", self.eval_interval > 0, "> 0"),
            ("checkpoint_interval", self.checkpoint_interval > 0, "> 0"),
        )
        for name, ok, expected in checks:
            if not ok:
                value = getattr(self, name)
                raise SegvitError(f"recipe {self.name}: {name} must be {expected}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_dataset(self, dataset: str | None) -> Recipe:
        """The paper's recipe takes the paper's schedule of `dataset` (iterations, weight decay,
        poly power); any other recipe, or an unknown dataset, is returned as it is."""
        if self.name != "paper" or dataset not in PAPER_SCHEDULES:
            return self
        iters, weight_decay, power = PAPER_SCHEDULES[dataset]
        return replace(self, iters=iters, weight_decay=weight_decay, power=power)

    def override(self, **changes: Any) -> Recipe:
        """A copy with `changes` (None values are left out); unknown names fail in one line."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SegvitError(f"recipe: unknown setting {unknown[0]!r}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# The paper's schedule per dataset: (iterations, AdamW weight decay, poly power).
PAPER_SCHEDULES: dict[str, tuple[int, float, float]] = {
    "ade20k": (160_000, 0.01, 1.0),
    "coco-stuff-10k": (80_000, 0.02, 2.0),
    "pascal-context": (80_000, 0.03, 1.0),
    "pascal-context-59": (80_000, 0.03, 1.0),
    "demo": (1000, 0.01, 1.0),  # not the paper's: the paper recipe on the demo set, for tests
}

RECIPES: dict[str, Recipe] = {
    "paper": Recipe(),
    # Tiny ViTs on the demo set, on a CPU in minutes. Every row starts from one tiny backbone
    # pretrained on the demo set, as every paper row starts from AugReg, and the head trains
    # at x10 as the paper's; lr, warm-up and steps are scaled to the CPU budget.
    "smoke": Recipe(
        name="smoke", dataset="demo", tiny=True, pretrained="smoke", iters=150, batch=8,
        lr=3e-4, head_lr_mult=10.0, warmup_iters=15, eval_interval=150,
        checkpoint_interval=150,
    ),
}  # fmt: skip
# The smoke recipe from a random backbone: what the pretrained one changes, row by row.
RECIPES["smoke-scratch"] = replace(RECIPES["smoke"], name="smoke-scratch", pretrained=None)


def get_recipe(name: str, dataset: str | None = None) -> Recipe:
    """The named recipe, with the paper's schedule for `dataset` where the recipe is the
    paper's; a one-line error for an unknown name or a dataset the recipe does not allow."""
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise SegvitError(f"--preset {name}: expected one of {', '.join(RECIPES)}") from None
    if recipe.dataset and dataset and dataset != recipe.dataset:
        raise SegvitError(f"recipe {name} trains on {recipe.dataset}, not {dataset}")
    return recipe.for_dataset(recipe.dataset or dataset)
