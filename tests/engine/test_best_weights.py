"""best.pt holds the FIRST evaluation that reached the best score: a later tie keeps it, a
NaN score never becomes best."""

import math

import torch

from segvit.engine import checkpoint as ckpt
from segvit.engine.train import train


def _train_with_scores(tiny, work_dir, scores):
    calls = iter(scores)
    torch.manual_seed(1)
    cfg = tiny.make_cfg(
        work_dir=str(work_dir), iters=2 * len(scores), batch=4, eval_interval=2,
        checkpoint_interval=100, log_interval=100, num_workers=0, device="cpu",
    )  # fmt: skip
    return train(
        cfg,
        model=tiny.TinySegmentor(),
        train_set=tiny.TinySet(),
        loss_fn=tiny.pixel_loss,
        evaluate_fn=lambda model: {"mIoU": next(calls)},
    )


def test_a_tie_keeps_the_earlier_best(tiny, tmp_path):
    result = _train_with_scores(tiny, tmp_path, [0.5, 0.5, 0.4])
    assert result.best_metric == 0.5
    _, meta = ckpt.load_weights(tmp_path / "best.pt")
    assert (meta["iteration"], meta["mIoU"]) == (2, 0.5)


def test_a_nan_score_is_never_best(tiny, tmp_path):
    result = _train_with_scores(tiny, tmp_path, [math.nan, 0.2, math.nan])
    _, meta = ckpt.load_weights(tmp_path / "best.pt")
    assert result.best_metric == 0.2 and meta["iteration"] == 4
