"""Pretrained ViT weights: from the timm hub, a local cache folder, or a file the user names.

Whatever the source, the state dict is adapted the same way: the classifier is dropped, and
the class token and final norm too unless the model's ViT has them (the Segmenter and DPT
comparison rows keep both, as mmseg's VisionTransformer does with `with_cls_token`); blocks
the model does not use are skipped, and the position embeddings' grid is resized bicubically
(without antialiasing, as the release) to the crop's, the class slot kept as it is.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from segvit.errors import SegvitError
from segvit.modeling.backbone import resize_pos_embed
from segvit.modeling.cache import weights_dir
from segvit.modeling.specs import SwinSpec, ViTSpec
from segvit.modeling.unpickle import unreadable

WEIGHT_SUFFIXES = (".safetensors", ".npz", ".pth", ".pt", ".bin")


def hub_url(spec: ViTSpec) -> str:
    return f"https://huggingface.co/timm/{spec.hub_name}/resolve/main/model.safetensors"


def load_pretrained(vit: VisionTransformer, source: str | Path, spec: ViTSpec) -> Path | str:
    """Load AugReg weights into `vit`; `source` is "hub" or a file. Returns where they came from."""
    state, origin = _source_state(source, spec)
    _load_adapted(vit, state, origin)
    return origin


def load_swin_pretrained(swin: nn.Module, source: str | Path, spec: SwinSpec) -> Path | str:
    """Load timm Swin weights (ImageNet-1k) into `swin`; `source` is "hub" or a file.

    The classifier and final norm are dropped (the backbone norms each stage it returns
    itself); the relative-position tables depend only on the window, so a 224 checkpoint
    fits any crop; index tables and attention masks are rebuilt, not loaded."""
    state, origin = _source_state(source, spec)
    state = {
        k.removeprefix("backbone.").removeprefix("swin."): v
        for k, v in state.items()
        if not k.startswith(("head", "norm."))
    }
    rebuilt = ("relative_position_index", "attn_mask")  # buffers derived from the shapes
    load_exactly(swin, state, origin, "this Swin", rebuilt=rebuilt)
    return origin


def _source_state(
    source: str | Path, spec: ViTSpec | SwinSpec
) -> tuple[dict[str, torch.Tensor], Path | str]:
    """The checkpoint `source` names ("hub": the cache folder, else a download; or a file)."""
    if str(source) == "hub":
        if not spec.pretrained_tag:
            raise SegvitError(f"{spec.label} has no pretrained weights on the hub")
        cached = [weights_dir() / f"{spec.hub_name}{s}" for s in WEIGHT_SUFFIXES]
        found = next((p for p in cached if p.is_file()), None)
        state, origin = (_read_file(found, spec), found) if found else (_download(spec), "hub")
    else:
        path = Path(source)
        if not path.is_file():  # a hub address only where the hub has weights of this size
            hub = f"; its hub weights are at {hub_url(spec)}" if spec.pretrained_tag else ""
            raise SegvitError(f"--pretrained {path}: no such weights file{hub}")
        state, origin = _read_file(path, spec), path
    return state, origin


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """A quick look before the hub client, which retries for half a minute when offline."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _download(spec: ViTSpec | SwinSpec) -> dict[str, torch.Tensor]:
    target = weights_dir() / f"{spec.hub_name}.safetensors"
    advice = f"fetch {hub_url(spec)} and save it as {target}, or pass --pretrained PATH"
    if not _hub_reachable():
        raise SegvitError(f"huggingface.co is unreachable (offline?); {advice}")
    try:  # any failure of the hub (proxy, missing file, quota) gets the same advice
        reference = timm.create_model(spec.hub_name, pretrained=True, num_classes=0)
    except Exception as err:
        raise SegvitError(f"could not download {spec.hub_name} ({err}); {advice}") from err
    return reference.state_dict()


def _read_file(path: Path, spec: ViTSpec | SwinSpec) -> dict[str, torch.Tensor]:
    if path.suffix not in WEIGHT_SUFFIXES:
        raise SegvitError(f"{path}: expected a {'/'.join(WEIGHT_SUFFIXES)} weights file")
    try:
        if path.suffix == ".npz" and isinstance(spec, ViTSpec):  # AugReg JAX: timm's reader
            reference = timm.create_model(
                spec.timm_name, pretrained=False, num_classes=0, img_size=384
            )
            reference.load_pretrained(str(path))
            return reference.state_dict()
        return timm.models.load_state_dict(str(path))
    except Exception as err:  # corrupt or foreign files fail in many library-specific ways
        kind = "ViT" if isinstance(spec, ViTSpec) else "Swin"
        raise unreadable(path, f"{kind} checkpoint", err) from None


def _load_adapted(vit: VisionTransformer, state: dict[str, torch.Tensor], origin) -> None:
    """Fit a timm-format ViT state dict to `vit`: its class token (or none), its final norm
    (or none), its grid, its depth."""
    depth = len(vit.blocks)
    own = vit.state_dict()
    class_token = "cls_token" in own
    dropped = ("head", "fc_norm") + (() if "norm.weight" in own else ("norm.",))
    dropped += () if class_token else ("cls_token",)
    state = {
        k.removeprefix("backbone.").removeprefix("vit."): v
        for k, v in state.items()
        if not k.startswith(dropped)
    }
    state = {k: v for k, v in state.items() if not (k.startswith("blocks.") and _block(k) >= depth)}
    if "pos_embed" not in state:
        raise SegvitError(f"{origin}: no pos_embed; expected a timm ViT state dict")
    pos = state["pos_embed"]  # (1, prefix + g*g, C)
    prefix = 0 if math.isqrt(pos.shape[1]) ** 2 == pos.shape[1] else 1
    side = math.isqrt(pos.shape[1] - prefix)
    if side * side != pos.shape[1] - prefix:
        raise SegvitError(f"{origin}: pos_embed of {pos.shape[1]} tokens is no square grid")
    grid = resize_pos_embed(pos[:, prefix:], (side, side), vit.patch_embed.grid_size)
    if class_token:
        if not prefix:
            raise SegvitError(f"{origin}: pos_embed has no class-token slot; this ViT needs one")
        grid = torch.cat([pos[:, :1], grid], dim=1)
    state["pos_embed"] = grid
    load_exactly(vit, state, origin, "this ViT")


def load_exactly(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    origin: Path | str,
    what: str,
    *,
    rebuilt: tuple[str, ...] = (),
) -> None:
    """Load `state` into `module`: every key present and of its shape (keys ending in
    `rebuilt` may be missing), else one line naming the first tensor that does not fit
    `what` (e.g. "this ViT", or the model a checkpoint's metadata describes)."""
    expected = module.state_dict()
    for name, tensor in state.items():
        if name not in expected:
            raise SegvitError(f"{origin}: weights do not fit {what}: unexpected tensor {name}")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise SegvitError(
                f"{origin}: weights do not fit {what}: tensor {name} has shape "
                f"{tuple(tensor.shape)}, {what} needs {tuple(expected[name].shape)}"
            )
    missing = [k for k in expected if k not in state and not k.endswith(rebuilt)]
    if missing:
        raise SegvitError(f"{origin}: weights do not fit {what}: no tensor {missing[0]} (and "
                          f"{len(missing) - 1} more)")  # fmt: skip
    module.load_state_dict(state, strict=False)


def _block(key: str) -> int:
    return int(key.split(".")[1])


def load_timm_pretrained(
    vit: nn.Module, source: str | Path, spec: ViTSpec, img_size: int
) -> Path | str:
    """Load the weights of a timm-family backbone (segvit.modeling.families) into `vit` the
    way timm loads them: `source` "hub" is timm's own download through the Hugging Face
    cache (HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE apply), a file goes through timm's filter
    for its architecture; either way learned position embeddings are resized once, to the
    crop's grid. Blocks past the last tapped layer are not kept."""
    from segvit.modeling.timm_vit import create_timm_vit

    reference = create_timm_vit(spec, img_size, pretrained=source)
    own = vit.state_dict()
    state = {k: v for k, v in reference.state_dict().items() if k in own}
    origin = spec.hub_name if str(source) == "hub" else Path(source)
    load_exactly(vit, state, origin, f"this {spec.label}")
    return origin
