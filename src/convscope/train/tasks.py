"""What the one Trainer optimises and measures: image/series classification or per-pixel segmentation.

A task supplies the loss of a batch, the running training accuracy (images or pixels), the
test metrics of an epoch and the metric that picks ``best.npz``; the loop, checkpoints,
resume and curves are the Trainer's and shared by both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn import functional as F
from .metrics import pixel_confusion, segmentation_report

if TYPE_CHECKING:
    from ..data.dataset import DataSplits
    from ..nn import Module

TASKS = ("auto", "classify", "segment")


class ClassificationTask:
    """One label per input: cross-entropy, accuracy; best.npz by test accuracy."""

    name = "classify"
    primary = "test_accuracy"

    def loss(self, logits: Tensor, y: np.ndarray, label_smoothing: float = 0.0) -> Tensor:
        return F.cross_entropy(logits, Tensor._wrap(y, False), label_smoothing=label_smoothing)

    def count_correct(self, logits: np.ndarray, y: np.ndarray) -> tuple:
        """(correct, counted) of a batch: images whose top class is the label."""
        return int((logits.argmax(axis=1) == y).sum()), len(y)

    def evaluate(self, model: Module, loader: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
        """test_loss (mean cross-entropy) and test_accuracy over a loader (eval mode, no tape)."""
        model.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        with no_grad():
            for x, y in loader:
                logits = model(Tensor._wrap(x, False))
                if not np.isfinite(logits.data).all():
                    return {"test_loss": float("nan"), "test_accuracy": 0.0}
                loss_sum += F.cross_entropy(logits, Tensor._wrap(y, False), reduction="sum").item()
                correct += int((logits.data.argmax(axis=1) == y).sum())
                seen += len(y)
        return {"test_loss": loss_sum / max(seen, 1), "test_accuracy": correct / max(seen, 1)}

    def describe(self, metrics: dict) -> str:
        return f"test loss {metrics['test_loss']:.4f} acc {100 * metrics['test_accuracy']:.2f}%"


class SegmentationTask:
    """One label per pixel: per-pixel cross-entropy with ``ignore_index``; pixel accuracy,
    per-class IoU and mean IoU; best.npz by test mean IoU.

    Args:
        classes (list of str): class names (mask values).
        ignore_index (int, default 255): mask value that contributes to no loss or metric.
    """

    name = "segment"
    primary = "test_miou"

    def __init__(self, classes: Sequence[str], ignore_index: int = 255) -> None:
        self.classes = list(classes)
        self.ignore_index = int(ignore_index)

    def loss(self, logits: Tensor, y: np.ndarray, label_smoothing: float = 0.0) -> Tensor:
        return F.cross_entropy(
            logits, Tensor._wrap(y, False), ignore_index=self.ignore_index, label_smoothing=label_smoothing
        )

    def count_correct(self, logits: np.ndarray, y: np.ndarray) -> tuple:
        """(correct, counted) labelled pixels of a batch (N, K, H, W) vs masks (N, H, W)."""
        keep = y != self.ignore_index
        return int(((logits.argmax(axis=1) == y) & keep).sum()), int(keep.sum())

    def evaluate(self, model: Module, loader: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
        """test_loss (mean over labelled pixels), test_accuracy = test_pixel_accuracy, test_miou
        and test_iou_<class> for each class (None when absent from labels and predictions)."""
        model.eval()
        k = len(self.classes)
        cm = np.zeros((k, k), dtype=np.int64)
        loss_sum = 0.0
        with no_grad():
            for x, y in loader:
                logits = model(Tensor._wrap(x, False))
                if not np.isfinite(logits.data).all():
                    return {"test_loss": float("nan"), "test_accuracy": 0.0, "test_miou": 0.0}
                loss_sum += F.cross_entropy(
                    logits, Tensor._wrap(y, False), ignore_index=self.ignore_index, reduction="sum"
                ).item()
                cm += pixel_confusion(y, logits.data.argmax(axis=1), k, self.ignore_index)
        report = segmentation_report(cm, self.classes)
        out = {
            "test_loss": loss_sum / max(report["pixels"], 1),
            "test_accuracy": report["pixel_accuracy"],
            "test_pixel_accuracy": report["pixel_accuracy"],
            "test_miou": report["miou"],
        }
        out.update({f"test_iou_{name}": v for name, v in zip(self.classes, report["iou"], strict=True)})
        return out

    def describe(self, metrics: dict) -> str:
        return (
            f"test loss {metrics['test_loss']:.4f} pixel acc {100 * metrics['test_accuracy']:.2f}% "
            f"mIoU {metrics['test_miou']:.4f}"
        )


def make_task(
    name: str, splits: DataSplits, ignore_index: int = 255
) -> ClassificationTask | SegmentationTask:
    """The task for a run: 'auto' follows the data (masks -> segment, labels -> classify).

    Raises:
        ValueError: a task the data cannot serve (e.g. segment on a classification set).
    """
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    found = splits.task
    if name != "auto" and name != found:
        kind = "per-pixel masks" if found == "segment" else "one label per input"
        raise ValueError(
            f"--task {name} needs {'per-pixel masks' if name == 'segment' else 'one label per input'} "
            f"(mnist-seg:PATH or segfolder:PATH for segment); this data set has {kind}"
        )
    if found == "segment":
        return SegmentationTask(splits.classes, getattr(splits.train, "ignore_index", ignore_index))
    return ClassificationTask()
