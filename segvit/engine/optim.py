"""AdamW with the head at x10 learning rate, and mmcv's iteration-based poly schedule.

Who decays: the head's parameters train at `head_lr_mult` x lr. Norm parameters (LayerNorm,
GroupNorm, BatchNorm weights and biases), `pos_embed` and query embeddings (`nn.Embedding`
weights, the heads' learnable queries) get no weight decay; everything else, biases of
linear/conv layers included, decays. Exempting position and query embeddings follows the
usual ViT/DETR practice (timm's `no_weight_decay`, Mask2Former's embedding multiplier 0).

The SegViT release differs in two small ways (mmcv `custom_keys` {'head': lr x10, 'norm'/'ln':
decay x0}, where the first matching key wins and 'head' sorts first): its `pos_embed` and query
embeddings DO decay, and so do the norms inside the head. `release_rule=True` reproduces that;
the paper recipe uses it (segvit.engine.recipe.Recipe.release_decay_rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from segvit.engine.distributed import unwrap
from segvit.engine.recipe import Recipe
from segvit.errors import SegvitError

# References: SegViT release configs (AdamW 2e-5, betas (0.9, 0.999), head lr x10, norm decay 0,
# warm-up 1500 iterations from ratio 1e-6, poly power 1.0, min_lr 0); mmcv PolyLrUpdaterHook
# with linear warm-up (the warm-up factor multiplies the poly-decayed lr of the same iteration).

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.LocalResponseNorm)


def _no_decay_names(model: nn.Module, *, release_rule: bool) -> set[str]:
    """Names of the parameters exempt from weight decay (see the module docstring)."""
    names = set()
    for module_name, module in model.named_modules():
        in_head = module_name == "head" or module_name.startswith("head.")
        exempt = isinstance(module, _NORMS) and not (release_rule and in_head)
        exempt |= isinstance(module, nn.Embedding) and not release_rule
        if exempt:
            prefix = f"{module_name}." if module_name else ""
            names.update(prefix + name for name, _ in module.named_parameters(recurse=False))
    if not release_rule:
        names.update(name for name, _ in model.named_parameters() if name.endswith("pos_embed"))
    return names


def recipe_optimizer(model: nn.Module, recipe: Recipe) -> AdamW:
    """The optimiser a recipe trains `model` with (training and `segvit bench train`)."""
    return build_optimizer(
        model, lr=recipe.lr, weight_decay=recipe.weight_decay, head_lr_mult=recipe.head_lr_mult,
        release_rule=recipe.release_decay_rule,
    )  # fmt: skip


def build_optimizer(
    model: nn.Module,
    *,
    lr: float = 2e-5,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.01,
    head_lr_mult: float = 10.0,
    release_rule: bool = False,
) -> AdamW:
    """AdamW over at most four groups: {backbone, head} x {decay, no decay}.

    `model.head` (parameters named "head.*") is the head. Frozen parameters are left out.
    Each group carries a "name" so logs can tell the backbone's lr from the head's.
    """
    model = unwrap(model)  # a DDP wrapper names everything "module.*"
    if lr <= 0 or head_lr_mult <= 0 or weight_decay < 0:
        raise SegvitError(
            f"optimizer: expected lr > 0, head_lr_mult > 0, weight_decay >= 0; got lr={lr}, "
            f"head_lr_mult={head_lr_mult}, weight_decay={weight_decay}"
        )
    no_decay = _no_decay_names(model, release_rule=release_rule)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name.startswith("head."), name not in no_decay)
            groups.setdefault(key, []).append(param)
    if not groups:
        raise SegvitError("optimizer: the model has no trainable parameters")
    param_groups = [
        {
            "name": ("head" if head else "backbone") + ("" if decay else "_no_decay"),
            "params": params,
            "lr": lr * (head_lr_mult if head else 1.0),
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (head, decay), params in sorted(groups.items())
    ]
    return AdamW(param_groups, lr=lr, betas=betas, weight_decay=weight_decay)


@dataclass(frozen=True)
class PolyWarmup:
    """lr factor at iteration i: linear warm-up from `warmup_ratio`, times poly decay to min_lr.

    A callable object rather than a closure so LambdaLR saves and restores it in state_dict.
    `min_fraction` is min_lr / this group's base lr (mmcv's min_lr is absolute, per group).
    """

    total_iters: int
    warmup_iters: int
    warmup_ratio: float
    power: float
    min_fraction: float

    def __call__(self, iteration: int) -> float:
        progress = min(iteration, self.total_iters) / self.total_iters
        factor = (1.0 - self.min_fraction) * (1.0 - progress) ** self.power + self.min_fraction
        if iteration < self.warmup_iters:
            factor *= 1.0 - (1.0 - iteration / self.warmup_iters) * (1.0 - self.warmup_ratio)
        return factor


def build_schedule(
    optimizer: Optimizer,
    *,
    total_iters: int,
    warmup_iters: int = 1500,
    warmup_ratio: float = 1e-6,
    power: float = 1.0,
    min_lr: float = 0.0,
) -> LambdaLR:
    """Per-iteration LambdaLR: call `.step()` once after every optimizer step.

    At iteration i (0-based, before its update) each group's lr is base_lr * PolyWarmup(i).
    """
    if total_iters <= 0 or warmup_iters < 0 or not 0 < warmup_ratio <= 1 or power <= 0:
        raise SegvitError(
            f"schedule: expected total_iters > 0, warmup_iters >= 0, 0 < warmup_ratio <= 1, "
            f"power > 0; got {total_iters}, {warmup_iters}, {warmup_ratio}, {power}"
        )
    lambdas = [
        PolyWarmup(
            total_iters=total_iters,
            warmup_iters=warmup_iters,
            warmup_ratio=warmup_ratio,
            power=power,
            min_fraction=min_lr / group.get("initial_lr", group["lr"]),
        )
        for group in optimizer.param_groups
    ]
    return LambdaLR(optimizer, lr_lambda=lambdas)


def current_lrs(optimizer: Optimizer) -> dict[str, float]:
    """The lr the next step uses: the backbone's ("lr") and the head's ("lr_head")."""
    lrs: dict[str, float] = {}
    for group in optimizer.param_groups:
        lrs.setdefault("lr_head" if group["name"].startswith("head") else "lr", group["lr"])
    lrs.setdefault("lr", lrs.get("lr_head", 0.0))  # a model that is all head
    return lrs
