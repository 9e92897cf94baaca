"""Segmentation metrics as mmsegmentation reports them: aAcc, mIoU, mAcc and per-class IoU/Acc.

Everything derives from one K x K int64 confusion matrix (rows: label, columns: prediction)
accumulated over the whole split, so per-class IoU is total intersection over total union,
not a mean of per-image IoUs. Values are PERCENTAGES (0-100), like mmsegmentation's logs and
the paper's tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from segvit.data.info import IGNORE_INDEX
from segvit.errors import SegvitError

# References: mmsegmentation 0.24 `mmseg/core/evaluation/metrics.py` (intersect_and_union,
# total_area_to_metrics) for the definitions and the NaN conventions.


class SegMetric:
    """Accumulates a confusion matrix over a split and turns it into metrics.

    Arguments:
        num_classes: K; predictions and labels (other than `ignore_index`) lie in [0, K).
        ignore_index: label value whose pixels are left out entirely.
        device: where the matrix lives; None takes the device of the first update.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        device: torch.device | None = None,
    ) -> None:
        if num_classes < 1:
            raise SegvitError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix: Tensor | None = None  # (K, K) int64, rows label, columns prediction
        if device is not None:
            self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def _zeros(self, device: torch.device) -> Tensor:
        K = self.num_classes
        return torch.zeros(K, K, dtype=torch.int64, device=device)

    @property
    def confusion(self) -> Tensor:
        """The (K, K) matrix (zeros before any update)."""
        return self.matrix if self.matrix is not None else self._zeros(torch.device("cpu"))

    def reset(self) -> None:
        if self.matrix is not None:
            self.matrix.zero_()

    def update(self, pred: Tensor, label: Tensor) -> None:
        """Add one prediction/label pair: (H, W) or (B, H, W) integer maps of the same shape."""
        if pred.shape != label.shape or pred.dim() not in (2, 3):
            raise SegvitError(
                f"metric update: expected prediction and label of one shape (H, W) or (B, H, W), "
                f"got {tuple(pred.shape)} and {tuple(label.shape)}"
            )
        if pred.is_floating_point() or label.is_floating_point():
            raise SegvitError("metric update: prediction and label must be integer class maps")
        K = self.num_classes
        label = label.to(pred.device).long()
        keep = label != self.ignore_index
        pred, label = pred[keep].long(), label[keep]
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= K):
            raise SegvitError(f"metric update: predicted classes must lie in [0, {K})")
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= K):
            raise SegvitError(
                f"metric update: label values must lie in [0, {K}) or be {self.ignore_index}"
            )
        if self.matrix is None:
            self.matrix = self._zeros(pred.device)
        counts = torch.bincount(label * K + pred, minlength=K * K).view(K, K)
        self.matrix += counts.to(self.matrix.device)

    def merge(self, other: SegMetric) -> SegMetric:
        """Add another state (same K and ignore index) into this one; returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise SegvitError(
                f"cannot merge metrics over {other.num_classes} classes (ignore "
                f"{other.ignore_index}) into {self.num_classes} (ignore {self.ignore_index})"
            )
        if other.matrix is None:
            return self
        if self.matrix is None:
            self.matrix = other.matrix.clone()
        else:
            self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self, group: dist.ProcessGroup | None = None) -> SegMetric:
        """Sum the matrices of every process (no-op outside torch.distributed); returns self.

        Every rank must call it. The matrix goes to the backend's device for the reduction
        (CUDA for NCCL) and comes back where it was.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return self
        backend = dist.get_backend(group)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
        matrix = self.confusion
        home = matrix.device
        work = matrix.to(device) if device is not None else matrix.clone()
        dist.all_reduce(work, op=dist.ReduceOp.SUM, group=group)
        self.matrix = work.to(home)
        return self

    def compute(self, *, exclude: Sequence[int] = ()) -> dict[str, float | list[float]]:
        """Metrics in percent: "aAcc", "mIoU", "mAcc" (floats) and "IoU", "Acc" (K floats).

        IoU of a class is NaN where its union is 0 (absent from both prediction and label)
        and Acc where it has no label pixels; mIoU and mAcc are NaN-means, so those classes
        do not count. A class seen only in the prediction has IoU 0 and counts.

        exclude: classes scored as if their LABELLED pixels were ignored (their matrix rows
        are dropped) and left out of the means (their entries are NaN). A pixel of another
        class predicted as an excluded class stays a miss for its own class. With
        exclude=(0,) a 60-class PASCAL-Context model is scored on the 59 classes, as in the
        "59 from 60" protocol (background labels ignored, background predictions wrong).
        """
        K = self.num_classes
        for c in exclude:
            if not 0 <= c < K:
                raise SegvitError(f"metric exclude: class {c} is outside [0, {K})")
        matrix = self.confusion.double()
        excluded = torch.zeros(K, dtype=torch.bool, device=matrix.device)
        excluded[list(exclude)] = True
        matrix[excluded] = 0  # drop the rows: those labels now count as ignored

        intersect = matrix.diagonal()
        area_label = matrix.sum(dim=1)
        area_pred = matrix.sum(dim=0)
        union = area_label + area_pred - intersect
        iou = intersect / union  # 0/0 -> NaN
        acc = intersect / area_label
        iou[excluded] = float("nan")
        acc[excluded] = float("nan")
        total = area_label.sum()
        a_acc = intersect.sum() / total if total > 0 else torch.tensor(float("nan"))
        return {
            "aAcc": 100 * float(a_acc),
            "mIoU": 100 * float(iou.nanmean()),
            "mAcc": 100 * float(acc.nanmean()),
            "IoU": (100 * iou).tolist(),
            "Acc": (100 * acc).tolist(),
        }
