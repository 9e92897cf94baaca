"""Fake release checkpoints for the converter tests, and the release's forward pass.

`release-manifests/` holds, for each of the seven released files, every key, shape and dtype
the release's code gives its model (docs/release-checkpoints.md). `fake_state` fills
a manifest with reproducible values; `shrink` keeps a manifest's keys at a small width and
crop; `write_release` saves a state dict the way mmseg does, with non-tensor `meta`.
`reference_predict` runs the release's architecture straight from release-named tensors
with torch's own packed MultiheadAttention, sharing nothing with segvit's modules, so it
checks what the key mapping means, not only where it puts things.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

MANIFESTS = Path(__file__).with_name("release-manifests")
NAMES = sorted(p.stem for p in MANIFESTS.glob("*.tsv"))
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class Manifest:
    name: str
    crop: int
    classes: int
    taps: tuple[int, ...]
    shrunk: bool
    width: int
    depth: int
    heads: int
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, torch.dtype]


def read_manifest(name: str) -> Manifest:
    lines = (MANIFESTS / f"{name}.tsv").read_text().splitlines()
    # "# crop 512, classes in config 150, taps [5, 7, 11], shrunk False, width 768, ..."
    fields = dict(re.findall(r"([a-z ]+?) (\[[^\]]*\]|\w+)(?:, |$)", lines[1][2:]))
    shapes, dtypes = {}, {}
    for line in lines[3:]:
        key, shape, dtype = line.split("\t")
        shapes[key] = tuple(int(s) for s in shape.split("x"))
        dtypes[key] = DTYPES[dtype]
    return Manifest(
        name=name,
        crop=int(fields["crop"]),
        classes=int(fields["classes in config"]),
        taps=tuple(ast.literal_eval(fields["taps"])),
        shrunk=fields["shrunk"] == "True",
        width=int(fields["width"]),
        depth=int(fields["depth"]),
        heads=int(fields["heads"]),
        shapes=shapes,
        dtypes=dtypes,
    )


def shrink(manifest: Manifest, *, width: int, heads: int, crop: int, classes: int) -> Manifest:
    """The same keys at another width, crop and class count (sizes mapped one to one)."""
    W, D, n = manifest.width, manifest.width // 2, (manifest.crop // 16) ** 2
    w, d, m = width, width // 2, (crop // 16) ** 2
    K, k = manifest.classes, classes
    sizes = {W: w, 3 * W: 3 * w, 4 * W: 4 * w, D: d, 3 * D: 3 * d, 4 * D: 4 * d,
             n: m, n + 1: m + 1, K: k, K + 1: k + 1}  # fmt: skip
    assert len(sizes) == 10, "two roles share a size in this manifest: shrink another one"
    shapes = {key: tuple(sizes.get(s, s) for s in shape) for key, shape in manifest.shapes.items()}
    return replace(manifest, crop=crop, classes=classes, width=width, heads=heads, shapes=shapes)


def value(index: int, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """The fake tensor of the index-th key: the same every time it is asked for."""
    generator = torch.Generator().manual_seed(index)
    return (torch.randn(shape, generator=generator) * 0.2).to(dtype)


def fake_state(manifest: Manifest) -> dict[str, Tensor]:
    return {
        key: value(i, shape, manifest.dtypes[key])
        for i, (key, shape) in enumerate(manifest.shapes.items())
    }


def write_release(path: Path, state: dict[str, Tensor]) -> Path:
    """mmseg's layout: the tensors and a `meta` of plain and numpy objects, as mmcv saves."""
    meta = {
        "mmseg_version": "0.24.0",
        "config": "model = dict(type='EncoderDecoder')\n",
        "CLASSES": ("wall", "building"),
        "PALETTE": np.array([[120, 120, 120], [180, 120, 120]], dtype=np.uint8),
        "hook_msgs": {"best_score": np.float64(0.513)},
        "iter": 160000,
    }
    torch.save({"state_dict": state, "meta": meta}, path)
    return path


# ---------------------------------------------------------------------------- the release


def _mha(query: Tensor, memory: Tensor, sd: dict[str, Tensor], p: str, heads: int) -> Tensor:
    """torch's packed MultiheadAttention (in_proj_weight = [q; k; v]) on (B, L, C) tensors."""
    out, _ = F.multi_head_attention_forward(
        query.transpose(0, 1), memory.transpose(0, 1), memory.transpose(0, 1),
        query.shape[-1], heads, sd[p + "in_proj_weight"], sd[p + "in_proj_bias"], None, None,
        False, 0.0, sd[p + "out_proj.weight"], sd[p + "out_proj.bias"], training=False,
        need_weights=False,
    )  # fmt: skip
    return out.transpose(0, 1)


def _ln(x: Tensor, sd: dict[str, Tensor], p: str, eps: float = 1e-5) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[p + "weight"], sd[p + "bias"], eps)


def _lin(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    return F.linear(x, sd[p + "weight"], sd[p + "bias"])


def _backbone(sd, images, m: Manifest, qd_index: int) -> list[tuple[Tensor, tuple[int, int]]]:
    """mmseg's ViT: class-token slot dropped, pre-norm blocks; QD at `qd_index` if shrunk."""
    x = F.conv2d(images, sd["backbone.patch_embed.projection.weight"],
                 sd["backbone.patch_embed.projection.bias"], stride=16)  # fmt: skip
    B, C, h, w = x.shape
    grid = (h, w)
    x = x.flatten(2).transpose(1, 2) + sd["backbone.pos_embed"][:, 1:]
    features = []
    for i in range(m.depth):
        p = f"backbone.layers.{i}."
        y = _ln(x, sd, p + "ln1.", eps=1e-6)
        if m.shrunk and i == qd_index:  # queries and residual subsampled 2x2, keys all tokens
            x = x.view(B, *grid, C)[:, ::2, ::2].reshape(B, -1, C)
            grid = ((grid[0] + 1) // 2, (grid[1] + 1) // 2)
            x = x + _mha(
                y.view(B, h, w, C)[:, ::2, ::2].reshape(B, -1, C), y, sd, p + "attn.attn.", m.heads
            )
        else:
            x = x + _mha(y, y, sd, p + "attn.attn.", m.heads)
        y = F.gelu(_lin(_ln(x, sd, p + "ln2.", eps=1e-6), sd, p + "ffn.layers.0.0."))
        x = x + _lin(y, sd, p + "ffn.layers.1.")
        if i in m.taps:
            features.append((x, grid))
    return features


def _atm_layer(q: Tensor, memory: Tensor, sd, p: str, heads: int) -> tuple[Tensor, Tensor]:
    """A post-norm layer whose cross-attention returns its pre-softmax map (B, N, L)."""
    q = _ln(q + _mha(q, q, sd, p + "self_attn.", heads), sd, p + "norm1.")
    B, N, C = q.shape
    split = lambda t: t.unflatten(-1, (heads, C // heads)).transpose(1, 2)  # noqa: E731
    Q = split(_lin(q, sd, p + "multihead_attn.q."))
    K = split(_lin(memory, sd, p + "multihead_attn.k."))
    V = split(_lin(memory, sd, p + "multihead_attn.v."))
    attn = Q @ K.transpose(-2, -1) * (C // heads) ** -0.5  # (B, h, N, L)
    out = (attn.softmax(-1) @ V).transpose(1, 2).flatten(2)
    q = _ln(q + _lin(out, sd, p + "multihead_attn.proj."), sd, p + "norm2.")
    ffn = _lin(F.relu(_lin(q, sd, p + "linear1.")), sd, p + "linear2.")
    return _ln(q + ffn, sd, p + "norm3."), attn.mean(1)


def _standard_layer(q: Tensor, memory: Tensor, sd, p: str, heads: int) -> Tensor:
    q = _ln(q + _mha(q, q, sd, p + "self_attn.", heads), sd, p + "norm1.")
    q = _ln(q + _mha(q, memory, sd, p + "multihead_attn.", heads), sd, p + "norm2.")
    ffn = _lin(F.relu(_lin(q, sd, p + "linear1.")), sd, p + "linear2.")
    return _ln(q + ffn, sd, p + "norm3.")


def reference_predict(sd: dict[str, Tensor], images: Tensor, m: Manifest, *, qd_index: int = 8):
    """Per-class scores (B, K, H, W) of the release's model, from its own tensors."""
    sd = {k: v.float() for k, v in sd.items()}
    B = images.shape[0]
    features = _backbone(sd, images, m, qd_index)
    layers = 3
    if m.shrunk:  # QU: position queries read the taps in order, then ATM on them
        q = sd["decode_head.q.weight"].expand(B, -1, -1)
        for k, (x, _) in enumerate(features, start=1):
            lateral = _ln(
                _lin(x, sd, f"decode_head.input_proj_{k}."), sd, f"decode_head.proj_norm_{k}."
            )
            for j in range(layers):
                q = _standard_layer(q, lateral, sd, f"decode_head.decoder_{k}.layers.{j}.", m.heads)
        grid = (m.crop // 16, m.crop // 16)
        queries = sd["decode_head.atm.q.weight"].expand(B, -1, -1)
        for j in range(layers):  # every layer gives a mask; the last one is the prediction
            queries, attn = _atm_layer(
                queries, q, sd, f"decode_head.atm.decoder_1.layers.{j}.", m.heads
            )
        logits, mask = _lin(queries, sd, "decode_head.atm.class_embed."), attn.unflatten(2, grid)
    else:  # the cascade: deepest tap first, stage masks summed
        queries = sd["decode_head.q.weight"].expand(B, -1, -1)
        stages = []
        for k, (x, grid) in enumerate(reversed(features), start=1):
            p = f"decode_head.decoder_{k}.layers."
            lateral = _ln(
                _lin(x, sd, f"decode_head.input_proj_{k}."), sd, f"decode_head.proj_norm_{k}."
            )
            for j in range(layers):
                queries, attn = _atm_layer(queries, lateral, sd, f"{p}{j}.", m.heads)
            stages.append(attn.unflatten(2, grid))
        size = stages[-1].shape[-2:]
        mask = sum(
            F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in stages
        )
        logits = _lin(queries, sd, "decode_head.class_embed.")
    mask = F.interpolate(mask, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return torch.einsum("bqk,bqhw->bkhw", logits.softmax(-1)[..., :-1], mask.sigmoid())
