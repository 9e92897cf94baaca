"""Past its last iteration the poly schedule stays at min_lr (mmcv clamps the progress)."""

import pytest

from segvit.engine.optim import build_optimizer, build_schedule


@pytest.mark.parametrize("power", [1.0, 0.5, 2.0])
def test_lr_stays_at_min_lr_after_the_last_iteration(tiny, power):
    optimizer = build_optimizer(tiny.TinySegmentor(), lr=1e-3)
    schedule = build_schedule(optimizer, total_iters=4, warmup_iters=0, power=power, min_lr=1e-5)
    for _ in range(7):  # three steps past the end
        optimizer.step()
        schedule.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-5] * 4)
