"""Stand-ins for the engine tests: a tiny segmentor, data set, transform and loss.

Imported by the tests (through conftest.py) and by the scripts they launch in subprocesses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from segvit.modeling.output import SegOutput

NUM_CLASSES = 3


class TinyBackbone(nn.Module):
    """Patch conv + position embedding + GroupNorm + dropout (so the torch RNG matters)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=2, stride=2)
        self.pos_embed = nn.Parameter(torch.randn(1, dim, 1, 1) * 0.02)
        self.norm = nn.GroupNorm(1, dim)
        self.drop = nn.Dropout(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.norm(self.proj(x) + self.pos_embed).relu())  # (B, D, H/2, W/2)


class TinyHead(nn.Module):
    """One query per class; masks are query-feature dot products (a one-layer ATM)."""

    def __init__(self, dim: int = 8, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.queries = nn.Embedding(num_classes, dim)
        self.norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)

    def forward(self, feature: Tensor) -> SegOutput:
        q = self.norm(self.queries.weight)  # (K, D)
        masks = torch.einsum("kd,bdhw->bkhw", q, feature)
        logits = self.class_embed(q).expand(feature.shape[0], -1, -1)  # (B, K, K+1)
        return SegOutput(class_logits=logits, mask_logits=masks)


class TinySegmentor(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.backbone = TinyBackbone(dim)
        self.head = TinyHead(dim)

    def forward(self, images: Tensor) -> SegOutput:
        return self.head(self.backbone(images))


class TinySet(Dataset):
    """`size` fixed random images (3, 8, 8) and labels in {0, 1, 2, 255}; records reads."""

    def __init__(self, size: int = 12, hw: int = 8) -> None:
        rng = np.random.default_rng(0)
        self.images = rng.normal(size=(size, 3, hw, hw)).astype(np.float32)
        labels = rng.integers(0, NUM_CLASSES + 1, size=(size, hw, hw))
        self.labels = np.where(labels == NUM_CLASSES, 255, labels)
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        self.reads.append(index)
        return {"image": self.images[index], "label": self.labels[index]}


def augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
    """Random flip and noise, drawn only from the generator it is given."""
    if rng.random() < 0.5:
        image, label = image[:, :, ::-1], label[:, ::-1]
    image = image + rng.normal(scale=0.1, size=image.shape).astype(np.float32)
    return image, label  # the label may be a negative-stride view: the engine copes


def pixel_loss(output: SegOutput, labels: Tensor) -> dict[str, Tensor]:
    """Pixel cross-entropy on the upsampled masks plus a small term on the class logits."""
    logits = F.interpolate(output.mask_logits, size=labels.shape[-2:], mode="bilinear")
    ce = F.cross_entropy(logits, labels, ignore_index=255)
    reg = 0.01 * output.class_logits.pow(2).mean()
    return {"loss": ce + reg, "loss_ce": ce, "loss_reg": reg}


def state_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    """Bitwise equality of two state dicts."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def make_cfg(**settings):
    """A TrainConfig from flat settings: recipe fields go to its Recipe, the rest to the run;
    `variant` and `dataset` become the run's record."""
    from dataclasses import fields

    from segvit.engine.recipe import Recipe
    from segvit.engine.train import TrainConfig

    recipe_names = {f.name for f in fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in settings.items() if k in recipe_names})
    record = {k: settings[k] for k in ("variant", "dataset") if k in settings}
    run = {
        k: v
        for k, v in settings.items()
        if k not in recipe_names and k not in ("variant", "dataset")
    }
    return TrainConfig(recipe=recipe, record=record, **run)


def cfg_fields() -> set[str]:
    from dataclasses import fields

    from segvit.engine.recipe import Recipe
    from segvit.engine.train import TrainConfig

    return {f.name for f in fields(Recipe)} | {f.name for f in fields(TrainConfig)}
