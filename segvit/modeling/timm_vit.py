"""Today's plain ViTs by timm name: DeiT III, DINOv2 (with registers), DINOv3, EVA-02, BEiT v2,
SigLIP 2. One adapter serves them all: the tapped token maps come from timm's own
`forward_intermediates` (prefix tokens dropped, NCHW); the model is built for the padded crop,
so learned position embeddings are resized once (by timm, when it loads the weights) and
RoPE and relative-bias tables are made for the crop's grid.

The paper's AugReg ViTs keep their own path (segvit.modeling.backbone): the release's
position resize, no class token.
"""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
from torch import nn

from segvit.errors import SegvitError
from segvit.modeling.families import find_family
from segvit.modeling.specs import Normalization, ViTSpec

# References: timm 1.0 `forward_intermediates` / `prune_intermediate_layers`; DINOv2's
# segmentation evaluation (pad the input to a multiple of the patch size).


def padded(size: int, patch: int) -> int:
    """The smallest multiple of `patch` that holds `size` pixels."""
    return math.ceil(size / patch) * patch


def backbone_spec(name: str) -> ViTSpec:
    """The ViTSpec of timm model `name` ("arch" or "arch.tag"): its width, depth and heads
    read from timm's own model (built on the meta device, no memory), its mean/std from
    timm's pretrained config, its family from segvit.modeling.families."""
    arch, tag = timm.models.split_model_name_tag(name)
    family = find_family(name if tag else f"{name}.")  # an untagged name matches its arch
    if not timm.is_model(arch):
        raise SegvitError(f"--backbone {name}: timm {timm.__version__} has no model {arch}")
    config = timm.models.get_pretrained_cfg(name if tag else arch)
    if config is None:
        raise SegvitError(f"--backbone {name}: timm has no pretrained weights of that name")
    tag = tag or (config.tag or "")
    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False, num_classes=0)
    depth = len(model.blocks)
    return ViTSpec(
        timm_name=arch,
        pretrained_tag=tag,
        dim=model.embed_dim,
        depth=depth,
        heads=model.blocks[0].attn.num_heads,
        drop_path=0.1 if depth <= 12 else 0.3,  # the paper's B and L rates
        label=f"{family.label} {arch}",
        patch_size=model.patch_embed.patch_size[0],
        norm=Normalization.from_unit(config.mean, config.std),
        family=family.key,
    )


def create_timm_vit(spec: ViTSpec, img_size: int, pretrained: str | Path | None) -> nn.Module:
    """timm's model `spec` for `img_size` (a multiple of the patch), without its head;
    pretrained: None (random), "hub" (timm's own download through the Hugging Face cache:
    HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE apply) or a local weights file."""
    kwargs = dict(
        img_size=img_size,
        num_classes=0,
        global_pool="",
        drop_path_rate=spec.drop_path,
        embed_dim=spec.dim,
        depth=spec.depth,
        num_heads=spec.heads,
    )
    if spec.family != "beitv2":  # BEiT's relative bias is made for one grid
        kwargs["dynamic_img_size"] = True
    name = spec.hub_name if spec.pretrained_tag else spec.timm_name
    if pretrained is None:
        return timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    if str(pretrained) != "hub":
        path = Path(pretrained)
        if not path.is_file():
            raise SegvitError(f"--pretrained {path}: no such weights file")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
    elif not spec.pretrained_tag:
        raise SegvitError(f"{spec.label} has no pretrained weights on the hub")
    origin = name if str(pretrained) == "hub" else str(pretrained)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # hub, cache and file failures come in many library types
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise SegvitError(f"{origin}: could not load the weights of {name} ({first})") from None
