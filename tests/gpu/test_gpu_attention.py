"""The fused attention path is active on the GPU: torch allows the flash and memory-efficient
kernels, timm's ViT blocks call scaled_dot_product_attention, and under bf16 autocast every
block runs a fused kernel rather than the unfused math fallback (seen by the profiler)."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from segvit.bench.train_step import synthetic_batch
from segvit.engine.train import forward_backward
from segvit.experiments.spec import resolve
from segvit.modeling.variants import build_model

pytestmark = pytest.mark.gpu

# The aten operators scaled_dot_product_attention dispatches to (torch 2.2+).
FUSED = (
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
)
MATH = "aten::_scaled_dot_product_attention_math"


def test_sdpa_backends_are_enabled():
    assert torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.mem_efficient_sdp_enabled()


@pytest.mark.parametrize("variant", ["segvit_b", "segvit_shrunk_l"])
def test_every_vit_block_runs_a_fused_kernel(variant, cuda):
    experiment = resolve(variant, "ade20k")
    torch.manual_seed(0)
    with cuda:
        model = build_model(variant, num_classes=150, crop=experiment.crop).train()
    vit = model.backbone.vit
    assert all(block.attn.fused_attn for block in vit.blocks), "timm's fused_attn is off"
    images, labels = synthetic_batch(2, experiment.crop, 150, generator=torch.Generator())
    images, labels = images.to(cuda), labels.to(cuda)
    loss_fn = experiment.criterion()
    forward_backward(model, images, labels, loss_fn, amp_dtype=torch.bfloat16)  # warm-up
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        forward_backward(model, images, labels, loss_fn, amp_dtype=torch.bfloat16)
        torch.cuda.synchronize(cuda)
    calls = {event.key: event.count for event in prof.key_averages()}
    fused = sum(calls.get(name, 0) for name in FUSED)
    attention = {k: v for k, v in calls.items() if "scaled_dot_product" in k or "attention" in k}
    print(f"{variant} attention operators: {attention}")
    kernels = sorted(
        {
            e.name
            for e in prof.events()
            if e.device_type.name == "CUDA"
            and any(s in e.name.lower() for s in ("flash", "fmha", "attention", "sdpa"))
        }
    )
    print(f"{variant} attention kernels: {kernels[:6]}")  # fmt: skip
    # One fused call per ViT block at least (the Shrunk block's QD attention too), forward only.
    assert fused >= len(vit.blocks), attention
    assert calls.get(MATH, 0) == 0, f"the unfused math path ran: {attention}"
