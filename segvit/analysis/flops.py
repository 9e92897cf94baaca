"""GFLOPs as the paper counts them: fvcore, one crop, eval mode, the whole prediction step.

fvcore counts one multiply-add as one flop and cannot see inside the fused attention kernel;
a handle counts `scaled_dot_product_attention` as its two matrix products (Q K^T and A V),
so the fast path stays on and the count matches the explicit-attention models of the paper.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import Tensor, nn

from segvit.modeling.segmentor import Segmentor

# References: fvcore's FlopCountAnalysis (MAC counting); SegViT Sec. 4 and the release's
# get_flops for the convention (1x3xHxW, eval, single crop).


def sdpa_flop_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """Flops of scaled_dot_product_attention: B*h*N*L*d for Q K^T plus B*h*N*L*dv for A V."""
    q, k, v = (get_shape(x) for x in inputs[:3])  # (..., N, d), (..., L, d), (..., L, dv)
    batch = 1
    for size in q[:-2]:
        batch *= size
    n, d = q[-2:]
    length, dv = k[-2], v[-1]
    return batch * n * length * (d + dv)


class _Predict(nn.Module):
    """Traces `Segmentor.predict`: backbone, head, mask upsampling and the final einsum."""

    def __init__(self, model: Segmentor) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.predict(images)


@dataclass(frozen=True)
class FlopsReport:
    variant: str
    num_classes: int
    crop: int
    gflops: float  # the whole prediction of one crop
    backbone_gflops: float
    head_gflops: float  # head plus its prediction step (mask upsampling, einsum)
    params_m: float  # parameters, millions

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_flops(model: Segmentor) -> FlopsReport:
    """Count one crop of the model's own size through `predict`, in eval mode."""
    crop = model.meta.crop
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(_Predict(model), torch.zeros(1, 3, crop, crop))
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_handle)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    fvcore_logger = logging.getLogger("fvcore")
    level = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)  # it warns about every uncounted elementwise op
    try:
        with torch.no_grad():
            total = analysis.total()
            by_module = analysis.by_module()
    finally:
        fvcore_logger.setLevel(level)
        model.train(was_training)
    backbone = by_module.get("model.backbone", 0)
    return FlopsReport(
        variant=model.meta.variant,
        num_classes=model.meta.num_classes,
        crop=crop,
        gflops=total / 1e9,
        backbone_gflops=backbone / 1e9,
        head_gflops=(total - backbone) / 1e9,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
    )
