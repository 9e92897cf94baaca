"""The smoke recipe's pretrained backbone: one tiny ViT-B, pretrained once on the demo set.

Every paper row starts from the same AugReg ViT; every smoke row starts from this one. It is
the very ViT the smoke rows build (`create_vit(tiny(VIT_B), crop)`), trained by the ordinary
engine on a pretext task over the demo training split: each token of layers 6 and 12 (the
taps of SegViT Shrunk) classifies the pixels under it with a linear head, and, with
`position_weight`, also names the grid cell it sits on. The second term gives the tokens what
a pretrained ViT's tokens carry and what query up-sampling reads: their position.

The result is a timm-format state dict in `cache_dir/<key>.safetensors`, which
`segvit.modeling.weights.load_pretrained` reads like any weights file. The key hashes all
that decides the weights (the pretext and its recipe, the crop, the demo set's marker:
generator version, seed, counts), so changing any of them trains anew. The file appears only
when complete (atomic write); a killed pretraining resumes from its last checkpoint in
`cache_dir/<key>.run/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.data.archives import MARKER
from segvit.data.catalog import get_dataset
from segvit.data.datasets import SegDataset
from segvit.data.info import DatasetSpec
from segvit.data.transforms import TrainTransform
from segvit.engine.checkpoint import CheckpointPaths, export_safetensors
from segvit.engine.recipe import Recipe
from segvit.engine.train import TrainConfig, train
from segvit.errors import SegvitError, first_line
from segvit.fileio import read_json
from segvit.losses import pixel_ce_loss
from segvit.modeling.backbone import ViTBackbone
from segvit.modeling.specs import VIT_B, ViTSpec, tiny

# References: SETR (Zheng et al. 2021) for per-token linear classification of ViT tokens;
# the SegViT release's ViT-B Shrunk taps (layers 6 and 12).

FORMAT = 2  # bump when what it trains changes (2: mmseg-exact photometric), so caches rebuild


@dataclass(frozen=True)
class Pretext:
    """What the backbone is pretrained on; the optimiser settings are a Recipe."""

    recipe: Recipe  # iterations, batch, lr, warm-up, seed (head_lr_mult 1: one lr)
    taps: tuple[int, ...] = (5, 11)  # layers (0-indexed) whose tokens are trained
    position_weight: float = 1.0  # weight of the grid-cell term; 0 trains labels only
    spec: ViTSpec = tiny(VIT_B)  # the smoke rows' ViT


PRETEXT = Pretext(
    recipe=Recipe(
        name="smoke-backbone", paper_schedule=False, tiny=True, pretrained=None, iters=300,
        batch=8,
        lr=1e-3, head_lr_mult=1.0, weight_decay=0.05, warmup_iters=30, eval_interval=300,
        checkpoint_interval=100, log_interval=25,
    ),
)  # fmt: skip


@dataclass
class PretextOutput:
    classes: list[Tensor]  # per tap (B, K, h, w) class scores
    cells: list[Tensor]  # per tap (B, h*w, h*w) grid-cell scores of each token; [] when off


class PretextModel(nn.Module):
    """The smoke rows' ViT and, per tap, LayerNorm + Linear heads (`head.*`, as the engine
    names a head) to class scores and, with `position_weight`, to grid-cell scores."""

    def __init__(self, pretext: Pretext, *, num_classes: int, crop: int) -> None:
        super().__init__()
        dim, taps = pretext.spec.dim, len(pretext.taps)
        cells = (crop // pretext.spec.patch_size) ** 2  # one per token of the grid
        self.backbone = ViTBackbone(spec=pretext.spec, img_size=crop, out_indices=pretext.taps)
        self.head = nn.ModuleDict(
            {
                "norms": nn.ModuleList(nn.LayerNorm(dim) for _ in range(taps)),
                "classes": nn.ModuleList(nn.Linear(dim, num_classes) for _ in range(taps)),
                "cells": nn.ModuleList(
                    nn.Linear(dim, cells) for _ in range(taps if pretext.position_weight else 0)
                ),
            }
        )

    def forward(self, images: Tensor) -> PretextOutput:
        out = PretextOutput([], [])
        for i, feature in enumerate(self.backbone(images)):  # (B, C, h, w) per tap
            tokens = self.head["norms"][i](feature.flatten(2).transpose(1, 2))  # (B, h*w, C)
            scores = self.head["classes"][i](tokens).transpose(1, 2)  # (B, K, h*w)
            out.classes.append(scores.unflatten(2, feature.shape[-2:]))
            if self.head["cells"]:
                out.cells.append(self.head["cells"][i](tokens))  # (B, h*w, h*w)
        return out


@dataclass(frozen=True)
class PretextLoss:
    """Pixel cross-entropy of every tap's class scores (upsampled, 255 ignored), plus
    `position_weight` x cross-entropy of every token's grid cell."""

    position_weight: float

    def __call__(self, output: PretextOutput, labels: Tensor) -> dict[str, Tensor]:
        classes = sum(pixel_ce_loss(scores, labels)["loss"] for scores in output.classes)
        terms = {"loss_classes": classes}
        if output.cells:
            cells = torch.arange(output.cells[0].shape[1], device=labels.device)  # (h*w,)
            terms["loss_cells"] = self.position_weight * sum(
                F.cross_entropy(scores.flatten(0, 1), cells.repeat(scores.shape[0]))
                for scores in output.cells
            )
        return {"loss": sum(terms.values()), **terms}


def _say(text: str) -> None:
    """A line to the user, once per job (rank 0 under torchrun)."""
    if os.environ.get("RANK", "0") == "0":
        print(text, file=sys.stderr, flush=True)


def _checked(target: Path) -> Path:
    """The cached file, if every tensor in it reads back; else one line saying what to do
    (a disk that filled up, a copy cut short)."""
    from safetensors import safe_open

    try:
        with safe_open(str(target), framework="pt") as file:
            for name in file.keys():  # noqa: SIM118 (safe_open is no dict)
                file.get_tensor(name)
    except Exception as err:
        reason = first_line(err)
        raise SegvitError(
            f"{target}: the cached smoke backbone is unreadable ({reason}); delete it and rerun "
            "to pretrain it again"
        ) from None
    return target


def backbone_key(pretext: Pretext, *, crop: int, demo_marker: object) -> str:
    """A short hash of all that decides the pretrained weights; `demo_marker` stands for the
    data (the demo set's marker, or another dataset's spec and training files)."""
    content = {
        "format": FORMAT,
        "pretext": asdict(pretext),
        "crop": crop,
        "demo": demo_marker,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def default_cache(data_root: Path, dataset: DatasetSpec | None = None) -> Path:
    """Where the smoke rows keep the backbone: beside the demo set under the data root (a
    generated tree is replaced when its generator changes), or in the folder of the dataset
    it is trained on."""
    if dataset is None or dataset.generated:
        return Path(data_root) / "smoke-backbone"
    return dataset.root(data_root) / "smoke-backbone"


def _data_key(dataset: DatasetSpec, data_root: Path, train_set: SegDataset) -> object:
    """What stands for the data in the key: a generated set's marker (the demo set's:
    generator, seed, counts), or any other set's spec and its training files (names and
    sizes). Nothing in it names where the data lies (no absolute path): a dataset folder
    moved elsewhere, or read through another data root, keeps its backbone."""
    if dataset.generated:
        return read_json(dataset.root(data_root) / MARKER)
    root = dataset.root(data_root)
    files = [
        (os.path.relpath(image, root), image.stat().st_size,
         os.path.relpath(label, root), label.stat().st_size)
        for image, label in train_set.pairs
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()
    spec = {k: v for k, v in json.loads(dataset.to_record()).items() if k != "source"}
    return {"dataset": spec, "train_files": digest}


def smoke_backbone(
    data_root: Path,
    cache_dir: Path | None = None,
    *,
    dataset: DatasetSpec | None = None,
    pretext: Pretext = PRETEXT,
    device: str = "auto",
    num_workers: int | None = None,
) -> Path:
    """The pretrained tiny backbone's weights file, trained first on `dataset`'s training
    split (default: the demo set) if not cached (minutes on a CPU, with a progress bar),
    kept in `cache_dir` (default: `default_cache`). Fails like training does when the data
    is missing."""
    dataset = dataset or get_dataset("demo")
    train_set = SegDataset(dataset, Path(data_root), "train")  # "run segvit prepare demo"
    marker = _data_key(dataset, Path(data_root), train_set)
    key = backbone_key(pretext, crop=dataset.crop, demo_marker=marker)
    cache_dir = default_cache(data_root, dataset) if cache_dir is None else Path(cache_dir)
    target = cache_dir / f"{key}.safetensors"
    if target.is_file():
        return _checked(target)
    work_dir = cache_dir / f"{key}.run"
    doing = "resuming" if CheckpointPaths(work_dir).state.is_file() else "starting"
    _say(
        f"{doing} the smoke backbone's pretraining: the tiny ViT-B every smoke row starts from, "
        f"{pretext.recipe.iters} iterations on {dataset.name} (minutes on a CPU); this happens "
        f"once, then every smoke run reads it from {target}"
    )
    torch.manual_seed(pretext.recipe.seed)  # one seed, one set of initial weights
    model = PretextModel(pretext, num_classes=dataset.num_classes, crop=dataset.crop)
    cfg = TrainConfig(
        recipe=pretext.recipe,
        work_dir=str(work_dir),
        record={"pretext": key},
        device=device,
        resume=True,
        label="smoke backbone pretraining",  # its iterations are not the user's run
        **({} if num_workers is None else {"num_workers": num_workers}),
    )
    began = time.perf_counter()
    result = train(
        cfg,
        model=model,
        train_set=train_set,
        loss_fn=PretextLoss(pretext.position_weight),  # the engine hands it the model's output
        transform=TrainTransform(dataset, dataset.crop),
    )
    meta = {"pretext": key, "iterations": result.iterations, "crop": dataset.crop}
    meta |= {f"final_{name}": round(value, 4) for name, value in result.losses.items()}
    meta["seconds"] = round(time.perf_counter() - began, 1)
    export_safetensors(target, model.backbone.vit.state_dict(), meta)
    shutil.rmtree(work_dir, ignore_errors=True)
    return target
