"""A bf16-autocast training step of every variant at the paper's crop and per-GPU batch: the
loss is finite and close to the float32 step's, every gradient finite, the step moves weights."""

import math

import pytest
import torch
from torch import nn

from segvit.bench.train_step import synthetic_batch
from segvit.engine.optim import build_optimizer
from segvit.engine.train import forward_backward, optimizer_step
from segvit.experiments.spec import resolve
from segvit.modeling.variants import VARIANTS, build_model

pytestmark = pytest.mark.gpu

# References: architecture.md "Data and training" (batch 16 in total) and the release configs
# (8 GPUs, 2 images each); ADE20K crops 512 (ViT-B) and 640 (ViT-L).
PER_GPU_BATCH = 2
# bf16 keeps 8 significant bits (a relative step of 2^-8 = 0.4% per rounding); through 12-24
# blocks and the loss's sums the error stays well inside 2% of the float32 loss.
LOSS_RTOL = 0.02


def without_randomness(model: nn.Module) -> None:
    """Dropout and stochastic depth off, so the two steps see the same network."""
    for module in model.modules():
        if isinstance(module, nn.Dropout | nn.Dropout2d):
            module.p = 0.0
        if hasattr(module, "drop_prob"):  # timm DropPath
            module.drop_prob = 0.0
        if isinstance(getattr(module, "attn_drop", None), float):  # segvit's decoder attention
            module.attn_drop = 0.0


@pytest.mark.usefixtures("fp32_matmuls")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bf16_step_matches_fp32(variant, cuda):
    experiment = resolve(variant, "ade20k")
    crop, classes = experiment.crop, experiment.dataset.num_classes
    torch.cuda.reset_peak_memory_stats(cuda)
    torch.manual_seed(0)
    with cuda:
        model = build_model(variant, num_classes=classes, crop=crop).train()
    without_randomness(model)
    loss_fn = experiment.criterion()
    images, labels = synthetic_batch(
        PER_GPU_BATCH, crop, classes, generator=torch.Generator().manual_seed(0)
    )
    images, labels = images.to(cuda), labels.to(cuda)

    fp32 = float(forward_backward(model, images, labels, loss_fn)["loss"])
    model.zero_grad(set_to_none=True)
    again = float(forward_backward(model, images, labels, loss_fn)["loss"])
    assert again == pytest.approx(fp32, rel=1e-5)  # deterministic: the comparison means something
    model.zero_grad(set_to_none=True)
    bf16 = float(forward_backward(model, images, labels, loss_fn, amp_dtype=torch.bfloat16)["loss"])
    assert math.isfinite(fp32) and math.isfinite(bf16)
    assert bf16 == pytest.approx(fp32, rel=LOSS_RTOL), f"{variant}: bf16 {bf16} vs fp32 {fp32}"
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)

    optimizer = build_optimizer(model, lr=2e-5, head_lr_mult=10.0)
    before = model.backbone.vit.patch_embed.proj.weight.detach().clone()
    norm = optimizer_step(model, optimizer, None, 35.0)
    assert math.isfinite(float(norm))
    after = model.backbone.vit.patch_embed.proj.weight
    assert bool(torch.isfinite(after).all()) and not torch.equal(before, after)
    print(f"{variant} {crop}x{crop} batch {PER_GPU_BATCH}: loss fp32 {fp32:.4f}, bf16 {bf16:.4f}, "
          f"peak {torch.cuda.max_memory_allocated(cuda) / 2**30:.1f} GiB")  # fmt: skip
