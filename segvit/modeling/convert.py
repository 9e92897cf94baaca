"""Released mmsegmentation checkpoints -> segvit state dicts, without mmcv and without
running any pickled code.

Every release key is either placed into the segvit model by an explicit rule below or named
in IGNORED with the reason; any other key, a segvit tensor no key fills, or a shape that does
not fit stops the conversion with a message naming the key. The segvit model to fill is
decided by the file itself (width, depth, stages, class count, crop), never by its name.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from segvit.errors import SegvitError
from segvit.modeling.release import RELEASES, get_release, is_release_name, resolve_cached
from segvit.modeling.segmentor import ModelMeta
from segvit.modeling.specs import tiny as tiny_spec
from segvit.modeling.unpickle import load_torch
from segvit.modeling.variants import build_model, get_variant

# References: the SegViT release (zbwxp/SegVit: atm_head.py, tpn_atm_head.py, vit_shrink.py)
# and mmsegmentation 0.24's VisionTransformer for the key names;
# docs/release-checkpoints.md for the key families and shapes of the seven files.

Shape = tuple[int, ...]
# How a release tensor is taken: whole, one third of a packed q/k/v tensor (dim 0), or the
# position embeddings without the class token's slot 0.
Take = Literal["copy", "q", "k", "v", "drop_class_slot"]

# Keys the release stores that no segvit tensor corresponds to, and why dropping them is safe.
IGNORED: dict[str, str] = {
    # mmseg's ViT concatenates it before the position embeddings and, built with
    # with_cls_token=False, drops it again before the first block: it never reaches a block.
    "backbone.cls_token": "the class token, removed before the first block",
    # The cross-entropy's class weights (1 per class, eos_coef 0.1 for "no object"): a loss
    # buffer fixed by the config, rebuilt by segvit.losses, not a trained weight.
    "decode_head.loss_decode.criterion.empty_weight": "a loss buffer (class weights)",
    "decode_head.atm.loss_decode.criterion.empty_weight": "a loss buffer (class weights)",
}

# mmseg VisionTransformer -> timm VisionTransformer (segvit.modeling.backbone). Both pack the
# attention input projection as [q; k; v] on dim 0 with heads contiguous inside each third
# (torch's MultiheadAttention in_proj, timm's Attention.qkv), so it is copied as it is.
_BACKBONE_RULES: list[tuple[str, str, Take]] = [
    (r"pos_embed", "pos_embed", "drop_class_slot"),
    (r"patch_embed\.projection\.(?P<p>weight|bias)", "patch_embed.proj.{p}", "copy"),
    (r"layers\.(?P<i>\d+)\.ln1\.(?P<p>weight|bias)", "blocks.{i}.norm1.{p}", "copy"),
    (r"layers\.(?P<i>\d+)\.attn\.attn\.in_proj_(?P<p>weight|bias)", "blocks.{i}.attn.qkv.{p}",
     "copy"),
    (r"layers\.(?P<i>\d+)\.attn\.attn\.out_proj\.(?P<p>weight|bias)",
     "blocks.{i}.attn.proj.{p}", "copy"),
    (r"layers\.(?P<i>\d+)\.ln2\.(?P<p>weight|bias)", "blocks.{i}.norm2.{p}", "copy"),
    (r"layers\.(?P<i>\d+)\.ffn\.layers\.0\.0\.(?P<p>weight|bias)", "blocks.{i}.mlp.fc1.{p}",
     "copy"),
    (r"layers\.(?P<i>\d+)\.ffn\.layers\.1\.(?P<p>weight|bias)", "blocks.{i}.mlp.fc2.{p}",
     "copy"),
]  # fmt: skip

# Release heads -> segvit.modeling.heads. The release numbers stages from 1 (`input_proj_1`,
# `decoder_1`); segvit's ModuleLists count from 0. Stage order needs no change: the release's
# ATMHead reverses its inputs and feeds stage 1 the deepest tap, as segvit's ATMHead does
# (zip(reversed(features), input_proj, decoders)); the release's QU head does not reverse,
# stage 1 reads the 1/16 tap, and neither does segvit's QUHead. So release stage k is
# segvit index k-1 in both heads (tests/modeling/test_release.py compares predictions with
# a forward pass of the release's architecture). Packed nn.MultiheadAttention projections
# (the ATM self-attention; both attentions of QU's standard decoders) split into q/k/v.
_LAYER = r"decoder_(?P<stage>\d+)\.layers\.(?P<j>\d+)\."
_OURS = "decoders.{stage}.layers.{j}."
_HEAD_RULES: list[tuple[str, str, Take | None]] = [
    (r"input_proj_(?P<stage>\d+)\.(?P<p>weight|bias)", "input_proj.{stage}.0.{p}", "copy"),
    (r"proj_norm_(?P<stage>\d+)\.(?P<p>weight|bias)", "input_proj.{stage}.1.{p}", "copy"),
    (_LAYER + r"self_attn\.in_proj_(?P<p>weight|bias)", _OURS + "self_attn.{qkv}.{p}", None),
    (_LAYER + r"self_attn\.out_proj\.(?P<p>weight|bias)", _OURS + "self_attn.proj.{p}", "copy"),
    (_LAYER + r"multihead_attn\.in_proj_(?P<p>weight|bias)", _OURS + "cross_attn.{qkv}.{p}",
     None),
    (_LAYER + r"multihead_attn\.out_proj\.(?P<p>weight|bias)", _OURS + "cross_attn.proj.{p}",
     "copy"),
    (_LAYER + r"multihead_attn\.(?P<m>q|k|v|proj)\.(?P<p>weight|bias)",
     _OURS + "cross_attn.{m}.{p}", "copy"),
    (_LAYER + r"linear1\.(?P<p>weight|bias)", _OURS + "ffn.0.{p}", "copy"),
    (_LAYER + r"linear2\.(?P<p>weight|bias)", _OURS + "ffn.3.{p}", "copy"),
    (_LAYER + r"norm(?P<n>[123])\.(?P<p>weight|bias)", _OURS + "norm{n}.{p}", "copy"),
    (r"q\.weight", "queries.weight", "copy"),
    (r"class_embed\.(?P<p>weight|bias)", "class_embed.{p}", "copy"),
]  # fmt: skip
_PREFIXES = (  # release prefix -> segvit prefix, longest first; QU's ATM lives in `atm.`
    ("backbone.", "backbone.vit.", _BACKBONE_RULES),
    ("decode_head.atm.", "head.atm.", _HEAD_RULES),
    ("decode_head.", "head.", _HEAD_RULES),
)


@dataclass(frozen=True)
class Placement:
    """One segvit tensor and where it comes from."""

    target: str  # segvit key
    source: str  # release key
    take: Take


def targets(key: str) -> list[Placement] | None:
    """Where release tensor `key` goes (three places for packed q/k/v); None: no rule."""
    for prefix, ours, rules in _PREFIXES:
        if not key.startswith(prefix):
            continue
        rest = key.removeprefix(prefix)
        for pattern, template, take in rules:
            found = re.fullmatch(pattern, rest)
            if found is None:
                continue
            parts = found.groupdict()
            if "stage" in parts:  # numbered from 1 in the release
                if int(parts["stage"]) < 1:
                    return None
                parts["stage"] = str(int(parts["stage"]) - 1)
            if take is None:  # a packed projection: q, k, v stacked on dim 0
                return [Placement(ours + template.format(**parts, qkv=p), key, p) for p in "qkv"]
            return [Placement(ours + template.format(**parts), key, take)]
        return None
    return None


def _source_shape(target_shape: Shape, take: Take) -> Shape:
    """The release tensor's shape that fills a segvit tensor of `target_shape`."""
    if take in ("q", "k", "v"):
        return (3 * target_shape[0], *target_shape[1:])
    if take == "drop_class_slot":
        return (target_shape[0], 1 + target_shape[1], *target_shape[2:])
    return target_shape


def plan(
    release_shapes: Mapping[str, Shape], model_shapes: Mapping[str, Shape], source: str
) -> list[Placement]:
    """Every segvit tensor's placement, checked against names and shapes only (no data)."""
    placements: dict[str, Placement] = {}
    for key, shape in release_shapes.items():
        if key in IGNORED:
            continue
        found = targets(key)
        if found is None or any(p.target not in model_shapes for p in found):
            raise SegvitError(
                f"{source}: unexpected key {key}: neither mapped to a segvit tensor nor in "
                "the ignore list"
            )
        for placement in found:
            expected = _source_shape(tuple(model_shapes[placement.target]), placement.take)
            if tuple(shape) != expected:
                raise SegvitError(
                    f"{source}: {key} has shape {tuple(shape)}, expected {expected} "
                    f"(for segvit's {placement.target})"
                )
            if placement.target in placements:
                raise SegvitError(
                    f"{source}: {key} and {placements[placement.target].source} both fill "
                    f"segvit's {placement.target}"
                )
            placements[placement.target] = placement
    missing = [name for name in model_shapes if name not in placements]
    if missing:
        raise SegvitError(
            f"{source}: missing key for segvit's {missing[0]} (and {len(missing) - 1} more): "
            "the file lacks tensors its layout needs"
        )
    return list(placements.values())


def take(tensor: Tensor, how: Take) -> Tensor:
    if how in ("q", "k", "v"):
        return tensor.chunk(3, dim=0)["qkv".index(how)]
    if how == "drop_class_slot":
        return tensor[:, 1:]  # (1, 1+N, C) -> (1, N, C): slot 0 is the class token's
    return tensor


# ---------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class ReleaseLayout:
    """The segvit model a release file's tensors describe."""

    variant: str
    num_classes: int
    crop: int
    tiny: bool  # segvit's width-192 ViT of the same depth (synthetic test files)

    def meta(self) -> ModelMeta:
        return ModelMeta(self.variant, self.num_classes, self.crop, self.tiny)


# (ViT depth, ATM stages, QU present) -> segvit variant: the three released structures.
_LAYOUTS = {
    (12, 3, False): "segvit_b",
    (24, 3, False): "segvit_l",
    (24, 2, True): "segvit_shrunk_l",
}
# What the class count read from the file maps to (the file names say "59cls" for 60 classes).
_DATASET_OF_CLASSES = {150: "ade20k", 171: "coco-stuff-10k", 60: "pascal-context",
                       59: "pascal-context-59"}  # fmt: skip


def describe(shapes: Mapping[str, Shape], source: str) -> ReleaseLayout:
    """Variant, class count, crop and width from the tensors alone."""

    def shape(key: str) -> Shape:
        if key not in shapes:
            raise SegvitError(f"{source}: missing key {key}; not a SegViT release checkpoint")
        return tuple(shapes[key])

    width = shape("backbone.patch_embed.projection.weight")[0]
    depth = len({k.split(".")[2] for k in shapes if k.startswith("backbone.layers.")})
    shrunk = any(k.startswith("decode_head.atm.") for k in shapes)
    stages = len({k.split(".")[1] for k in shapes if re.match(r"decode_head\.decoder_\d+\.", k)})
    variant = _LAYOUTS.get((depth, stages, shrunk))
    if variant is None:
        raise SegvitError(
            f"{source}: a ViT of depth {depth} with {stages} decoder stages "
            f"({'with' if shrunk else 'without'} QU) is none of the released structures"
        )
    spec = get_variant(variant).spec
    if width not in (spec.dim, tiny_spec(spec).dim):
        raise SegvitError(f"{source}: width {width} fits neither {spec.label} nor its tiny form")
    atm = "decode_head.atm." if shrunk else "decode_head."
    num_classes = shape(atm + "q.weight")[0]
    if shape(atm + "class_embed.weight")[0] != num_classes + 1:
        raise SegvitError(
            f"{source}: {atm}class_embed.weight has {shape(atm + 'class_embed.weight')[0]} rows, "
            f"expected {num_classes + 1} (the {num_classes} classes of {atm}q.weight + no-object)"
        )
    tokens = shape("backbone.pos_embed")[1] - 1  # slot 0: the class token
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise SegvitError(f"{source}: backbone.pos_embed holds {tokens} tokens, not a square grid")
    return ReleaseLayout(variant, num_classes, spec.patch_size * grid, tiny=width != spec.dim)


def model_shapes(layout: ReleaseLayout) -> dict[str, Shape]:
    """The segvit model's tensor shapes, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = build_model(
            layout.variant, num_classes=layout.num_classes, crop=layout.crop, tiny=layout.tiny
        )
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def dry_run(shapes: Mapping[str, Shape], source: str) -> tuple[ReleaseLayout, list[Placement]]:
    """The whole conversion on names and shapes only: what a file would become."""
    layout = describe(shapes, source)
    return layout, plan(shapes, model_shapes(layout), source)


# ---------------------------------------------------------------------------- reading files


def _numpy_globals() -> list[Any]:
    """What mmseg's `meta` may hold besides plain data: numpy arrays (PALETTE), scalars
    (best scores) and their dtypes, under numpy 1 and numpy 2 module names. Nothing here runs
    code: these rebuild arrays from bytes."""
    import numpy as np

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: list[Any] = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((core._reconstruct, f"{module}._reconstruct"))
        allowed.append((core.scalar, f"{module}.scalar"))
    allowed += sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdFDUS"}, key=str)
    return allowed


def read_checkpoint(path: Path) -> Any:
    """torch.load(weights_only=True) with the numpy allow-list; a pickle that asks for
    anything else (a function to call, a class to build) is refused, naming what it asked."""
    return load_torch(Path(path), "checkpoint file", allowed=_numpy_globals())


def is_release_checkpoint(path: str | Path) -> bool:
    """`release:NAME`, or a torch zip file whose keys are mmseg's (`decode_head.*`, which
    segvit never writes): peeks at the pickle's strings without loading anything."""
    if is_release_name(path):
        return True
    path = Path(path)
    if path.suffix == ".safetensors" or not zipfile.is_zipfile(path):
        return False
    import pickletools

    with zipfile.ZipFile(path) as archive:
        member = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
        if member is None:
            return False
        data = archive.read(member)
    try:
        for _, arg, _ in pickletools.genops(data):
            if isinstance(arg, str) and arg.startswith("decode_head."):
                return True
    except ValueError:  # not a pickle after all
        return False
    return False


def release_state_dict(content: Any, source: str) -> dict[str, Tensor]:
    """The tensors of an mmseg checkpoint: content["state_dict"] (or a bare state dict)."""
    state = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not any(str(k).startswith("backbone.") for k in state):
        raise SegvitError(
            f"{source}: not an mmsegmentation checkpoint (expected a dict with a 'state_dict' "
            "of backbone.* and decode_head.* tensors)"
        )
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise SegvitError(f"{source}: state_dict[{key!r}] is a {type(value).__name__}, "
                              "not a tensor")  # fmt: skip
    return state


def convert_release(source: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A release file (a path or `release:NAME`) as a segvit state dict and the metadata
    segvit stores with weights (variant, num_classes, crop, tiny, trained_on, source)."""
    path = resolve_cached(source) if is_release_name(source) else Path(source)
    content = read_checkpoint(path)
    state = release_state_dict(content, str(path))
    layout, placements = dry_run({k: tuple(v.shape) for k, v in state.items()}, str(path))
    converted = {p.target: take(state[p.source], p.take) for p in placements}
    meta: dict[str, Any] = layout.meta().to_dict() | {"source": path.name}
    dataset = _DATASET_OF_CLASSES.get(layout.num_classes)
    if dataset is not None:
        meta["trained_on"] = dataset
    if path.stem in RELEASES:
        meta["release"] = get_release(path.stem).name
    mmseg_meta = content.get("meta") if isinstance(content, dict) else None
    if isinstance(mmseg_meta, dict) and isinstance(mmseg_meta.get("iter"), int):
        meta["iteration"] = mmseg_meta["iter"]
    return converted, meta
