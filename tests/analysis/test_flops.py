"""FLOPs: the SDPA handle against a hand count, and every SegViT row of the paper."""

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from torch import nn

from segvit.analysis.flops import count_flops, sdpa_flop_handle
from segvit.experiments.spec import resolve
from segvit.modeling.variants import build_model


class _SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_counted_as_its_two_matrix_products():
    B, h, N, L, d, dv = 2, 3, 5, 7, 4, 6
    q, k, v = torch.randn(B, h, N, d), torch.randn(B, h, L, d), torch.randn(B, h, L, dv)
    analysis = FlopCountAnalysis(_SDPA(), (q, k, v))
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_handle)
    analysis.unsupported_ops_warnings(False)
    # Q K^T: B*h*N*L multiply-adds of length d; A V: B*h*N*dv of length L.
    assert analysis.total() == B * h * N * L * d + B * h * N * dv * L


def test_report_splits_backbone_and_head():
    model = build_model("segvit_b", num_classes=8, crop=64, tiny=True)
    report = count_flops(model)
    assert report.crop == 64
    assert report.backbone_gflops > 0 and report.head_gflops > 0
    assert report.gflops == pytest.approx(report.backbone_gflops + report.head_gflops)
    assert model.training  # restored


# (variant, dataset, paper GFLOPs, tolerance): Tables 1, 2, 3 and 8.
PAPER_ROWS = [
    ("segvit_b", "ade20k", 120.9, 0.005),
    ("atm_single_b", "ade20k", 115.8, 0.005),
    ("naive_shrunk_b", "ade20k", 74.1, 0.005),
    ("segvit_shrunk_b", "ade20k", 97.1, 0.005),
    ("setr_b", "ade20k", 107.3, 0.01),
    ("segvit_l", "ade20k", 637.9, 0.005),
    ("segvit_shrunk_l", "ade20k", 373.5, 0.005),
    ("segvit_l", "coco-stuff-10k", 383.9, 0.005),
    ("segvit_shrunk_l", "coco-stuff-10k", 224.8, 0.005),
    ("segvit_l", "pascal-context", 321.6, 0.005),
    ("segvit_shrunk_l", "pascal-context", 186.9, 0.005),
]


@pytest.mark.parametrize("variant, dataset, paper, tolerance", PAPER_ROWS)
def test_gflops_match_the_paper(variant, dataset, paper, tolerance):
    torch.manual_seed(0)
    report = count_flops(resolve(variant, dataset).build_model(for_flops=True))
    assert report.gflops == pytest.approx(paper, rel=tolerance)
