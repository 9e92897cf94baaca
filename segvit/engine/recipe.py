"""How a model is trained: one `Recipe` dataclass, and its named instances.

The paper's recipe and the CPU-sized smoke recipe are two instances of the same dataclass;
a recipe with `paper_schedule` takes each dataset's schedule from its DatasetSpec
(iterations, weight decay, poly power). The training engine, `segvit bench train` and
`segvit reproduce` all read a Recipe; a command-line override is a typed `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from segvit.errors import SegvitError

if TYPE_CHECKING:
    from segvit.data.info import DatasetSpec

# References: SegViT release configs (mmseg 0.24 IterBasedRunner: AdamW lr 2e-5 with the head
# at x10, 1,500 linear warm-up iterations, poly decay, batch 16, grad clip 35, evaluation
# every 4,000 iterations); docs/architecture.md, "Data and training".


def shaping(default: Any) -> Any:
    """A Recipe field that shapes the weights: a resumed run must share it with the run it
    continues (segvit.engine.train); the others (intervals, names) may change."""
    return field(default=default, metadata={"shapes_weights": True})


class Backbone(str, Enum):
    """Where a backbone's starting weights come from, besides a weights file or None (random).
    A str, so a recipe's JSON reads "hub" or "smoke"."""

    HUB = "hub"  # the paper's ImageNet weights (AugReg for ViTs), from the hub or its cache
    SMOKE = "smoke"  # the tiny ViT pretrained on the run's dataset by the pretext task
    # (segvit.experiments.smoke_backbone)

    @classmethod
    def parse(cls, text: str | None) -> Backbone | str | None:
        """`--pretrained`'s value: hub, smoke, none (random) or a weights file."""
        if text is None or text == "none":
            return None
        return cls(text) if text in {b.value for b in cls} else text


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights a training run ends with, apart from the model
    and the data. Defaults are the paper's ADE20K recipe."""

    name: str = "paper"  # how results and run folders name it
    paper_schedule: bool = True  # each dataset's paper schedule sets iters, weight decay and
    # power; results compare with the paper's and go to results/ itself
    dataset: str | None = None  # the dataset of a table's rows and of runs that name none
    # (smoke: demo); None: each row's own
    tiny: bool = False  # width-192 ViTs of the same depth (CPU smoke runs)
    crop: int | None = None  # train (and pretrain the smoke backbone) at this crop, whatever
    # the dataset's, its scales shrunk in proportion (DatasetSpec.at_crop); None: the dataset's
    pretrained: Backbone | str | None = Backbone.HUB  # backbone init: a Backbone, a weights
    # file, or None (random)
    # Fields marked shaping() decide the weights: a resumed run must share them.
    iters: int = shaping(160_000)  # optimizer steps (the paper's per dataset: paper_schedule)
    batch: int = shaping(16)  # images per optimizer step over all processes (paper: 16)
    device_batch: int | None = None  # images per forward on one device; None: batch / world
    # size. Smaller values accumulate gradients over batch / (world size * device_batch) steps.
    lr: float = shaping(2e-5)  # AdamW learning rate of the backbone
    head_lr_mult: float = shaping(10.0)  # the head trains at lr x this
    weight_decay: float = shaping(0.01)  # AdamW decay (the paper's per dataset: paper_schedule)
    warmup_iters: int = shaping(1500)  # linear warm-up length
    warmup_ratio: float = shaping(1e-6)  # warm-up starts at lr x this
    power: float = shaping(1.0)  # poly decay power (the paper's per dataset: paper_schedule)
    min_lr: float = shaping(0.0)  # poly decays to this
    clip_grad: float = shaping(35.0)  # gradients are clipped to this global L2 norm
    amp: bool = shaping(True)  # mixed precision autocast on CUDA; a CPU always runs in float32
    amp_dtype: str = shaping("bfloat16")  # or "float16" (with a GradScaler) for old GPUs
    seed: int = shaping(0)  # seeds the weights, the data order and every augmentation
    release_decay_rule: bool = shaping(True)  # the release's weight decay: pos_embed, the
    # queries and the head's norms decay too (mmcv custom_keys); False exempts them (timm).
    freeze_backbone: bool = shaping(False)  # train the head alone: the backbone in eval mode,
    # no gradients, no backward through it, the optimiser over the head's parameters only
    mask_loss_excludes_ignored: bool = shaping(False)  # False: pixels labelled 255 are
    # background in every ATM mask target, as the release builds them (`label == class`);
    # True leaves them out of the focal and dice terms.
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
            ("seed", 0 <= self.seed < 2**63, "0 to 2**63 - 1 (torch and numpy seeds)"),
            ("clip_grad", self.clip_grad > 0, "> 0"),
            ("amp_dtype", self.amp_dtype in ("bfloat16", "float16"), "bfloat16 or float16"),
            ("log_interval", self.log_interval > 0, "> 0"),
            ("eval_interval", self.eval_interval > 0, "> 0"),
            ("checkpoint_interval", self.checkpoint_interval > 0, "> 0"),
            (
                "crop",
                self.crop is None or (self.crop > 0 and self.crop % 16 == 0),
                "None or a positive multiple of 16",
            ),
        )
        for name, ok, expected in checks:
            if not ok:
                value = getattr(self, name)
                raise SegvitError(f"recipe {self.name}: {name} must be {expected}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a Backbone as its string), for JSON and weights-only checkpoints."""
        content = asdict(self)
        if isinstance(self.pretrained, Backbone):
            content["pretrained"] = self.pretrained.value
        return content

    @classmethod
    def weight_shaping_fields(cls) -> tuple[str, ...]:
        """The settings a resumed run must share with the run it continues."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("shapes_weights"))

    def for_dataset(self, dataset: DatasetSpec) -> Recipe:
        """With `paper_schedule`, the recipe with `dataset`'s paper schedule (iterations,
        weight decay, poly power) where it has one; otherwise the recipe as it is."""
        schedule = dataset.paper_schedule
        if not self.paper_schedule or schedule is None:
            return self
        return replace(
            self, iters=schedule.iters, weight_decay=schedule.weight_decay, power=schedule.power
        )

    def override(self, **changes: Any) -> Recipe:
        """A copy with `changes` (None values are left out); unknown names fail in one line."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SegvitError(f"recipe: unknown setting {unknown[0]!r}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(),
    # Tiny ViTs on the demo set, on a CPU in minutes. Every row starts from one tiny backbone
    # pretrained on the demo set, as every paper row starts from AugReg, and the head trains
    # at x10 as the paper's; lr, warm-up and steps are scaled to the CPU budget.
    "smoke": Recipe(
        name="smoke", paper_schedule=False, dataset="demo", tiny=True, crop=128,
        pretrained=Backbone.SMOKE, iters=150, batch=8,
        lr=3e-4, head_lr_mult=10.0, warmup_iters=15, eval_interval=150,
        checkpoint_interval=150, log_interval=10,
    ),
}  # fmt: skip
# The smoke recipe from a random backbone: what the pretrained one changes, row by row.
RECIPES["smoke-scratch"] = replace(RECIPES["smoke"], name="smoke-scratch", pretrained=None)


def get_recipe(name: str, dataset: DatasetSpec | str | None = None) -> Recipe:
    """The named recipe, meeting `dataset` (a spec, a name or a dataset file) where one is
    given; a one-line error for an unknown name."""
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise SegvitError(f"--preset {name}: expected one of {', '.join(RECIPES)}") from None
    if dataset is None:
        return recipe
    if isinstance(dataset, str):
        from segvit.data.catalog import load_dataset

        dataset = load_dataset(dataset)
    return recipe.for_dataset(dataset)
