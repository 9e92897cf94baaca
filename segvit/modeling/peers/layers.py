"""Small building blocks the peer heads share: mmseg's conv-norm-act unit, a class-token ViT.

The class-token ViT is the backbone of the peers whose configs keep the pretrained class token
in the encoder (Segmenter, DPT, UperNet); SETR and SegViT drop it and use ViTBackbone.
"""

from __future__ import annotations

import timm
from torch import Tensor, nn

from segvit.modeling.specs import ViTSpec

# References: mmcv ConvModule (conv -> norm -> act, no conv bias under a norm); mmsegmentation
# VisionTransformer (`with_cls_token`, `output_cls_token`, `final_norm`) for the peers' backbones.


def conv_norm_act(
    in_dim: int,
    out_dim: int,
    kernel_size: int,
    *,
    stride: int = 1,
    norm: bool = True,
    act: bool = True,
) -> nn.Sequential:
    """Conv (padding k//2) -> BatchNorm -> ReLU, as mmcv's ConvModule builds it by default."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_dim, out_dim, kernel_size, stride=stride, padding=kernel_size // 2, bias=not norm
        )
    ]
    if norm:
        layers.append(nn.BatchNorm2d(out_dim))
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ClassTokenViTBackbone(nn.Module):
    """A timm ViT that keeps its class token through the encoder and returns the tapped layers.

    Arguments:
        spec: the ViT size.
        img_size: training crop; the position embeddings are made for its token grid.
        out_indices: layers whose outputs the head reads, shallowest first.
        final_norm: apply the ViT's final LayerNorm to the tapped outputs (Segmenter does).
        return_class_tokens: also return each tap's class token, as a (B, C, 1, 1) map after
            the spatial maps (DPT's readout reads it).
    """

    def __init__(
        self,
        *,
        spec: ViTSpec,
        img_size: int,
        out_indices: tuple[int, ...],
        final_norm: bool = False,
        return_class_tokens: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.out_indices = tuple(out_indices)
        self.final_norm = final_norm
        self.return_class_tokens = return_class_tokens
        self.vit = timm.create_model(
            spec.timm_name,
            pretrained=False,
            img_size=img_size,
            embed_dim=spec.dim,
            depth=spec.depth,
            num_heads=spec.heads,
            drop_path_rate=spec.drop_path,
            class_token=True,
            global_pool="",
            num_classes=0,
            dynamic_img_size=True,
        )
        self.vit.prune_intermediate_layers(list(self.out_indices), prune_norm=not final_norm)

    @property
    def out_dim(self) -> int:
        return self.spec.dim

    def forward(self, images: Tensor) -> list[Tensor]:
        pairs = self.vit.forward_intermediates(
            images,
            indices=list(self.out_indices),
            return_prefix_tokens=True,
            norm=self.final_norm,
            output_fmt="NCHW",
            intermediates_only=True,
        )  # [((B, C, h, w), (B, 1, C))] per tap
        maps = [spatial for spatial, _ in pairs]
        if not self.return_class_tokens:
            return maps
        return [*maps, *(cls.transpose(1, 2).unsqueeze(-1) for _, cls in pairs)]  # + (B, C, 1, 1)
