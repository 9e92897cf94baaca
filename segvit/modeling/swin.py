"""A Swin Transformer backbone from timm returning its stage maps (B, C_i, H/s_i, W/s_i).

As in the Swin segmentation and MaskFormer setups, each returned stage gets its own
LayerNorm; window attention pads maps whose size is not a multiple of the window.
"""

from __future__ import annotations

import timm
from torch import Tensor, nn

from segvit.modeling.specs import SwinSpec

# References: Swin Transformer (Liu et al., ICCV 2021); the Swin semantic-segmentation release
# and MaskFormer's D2SwinTransformer for the per-output LayerNorms and drop path 0.3.


class SwinBackbone(nn.Module):
    """Swin stages; returns the normed outputs of the stages in `out_indices` (0-indexed).

    Arguments:
        spec: the Swin size.
        img_size: training crop (a multiple of 32); other sizes work too (masks built on the fly).
        out_indices: stages whose outputs the head reads, shallowest first.
    """

    def __init__(
        self, *, spec: SwinSpec, img_size: int, out_indices: tuple[int, ...] = (0, 1, 2, 3)
    ) -> None:
        super().__init__()
        self.spec = spec
        self.out_indices = tuple(out_indices)
        self.swin = timm.create_model(
            spec.timm_name,
            pretrained=False,
            img_size=img_size,
            embed_dim=spec.embed_dim,
            depths=spec.depths,
            num_heads=spec.heads,
            window_size=spec.window,
            drop_path_rate=spec.drop_path,
            num_classes=0,
            strict_img_size=False,
        )
        self.swin.prune_intermediate_layers(list(self.out_indices), prune_norm=True)
        self.norms = nn.ModuleList(nn.LayerNorm(spec.dims[i]) for i in self.out_indices)

    @property
    def out_dims(self) -> tuple[int, ...]:
        return tuple(self.spec.dims[i] for i in self.out_indices)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.swin.patch_embed(images)  # (B, H/4, W/4, C), channels last
        maps = []
        for i, stage in enumerate(self.swin.layers):
            x = stage(x)  # (B, h, w, C_i)
            if i in self.out_indices:
                norm = self.norms[self.out_indices.index(i)]
                maps.append(norm(x).permute(0, 3, 1, 2).contiguous())  # (B, C_i, h, w)
        return maps
