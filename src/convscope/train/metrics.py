"""Metrics: accuracy, confusion matrix, per-class precision and recall; pixel accuracy and IoU."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_report(y_true, y_pred, num_classes: int, classes=None) -> dict:
    """Accuracy, the confusion matrix and per-class precision/recall/support.

    Precision of class k = correct k / predicted k (0 when nothing was predicted as k);
    recall = correct k / true k.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    correct = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, actual, out=np.zeros_like(correct), where=actual > 0)
    names = list(classes) if classes else [str(i) for i in range(num_classes)]
    total = int(cm.sum())
    return {
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "count": total,
        "confusion_matrix": cm.tolist(),
        "classes": names,
        "per_class": [
            {
                "class": names[k],
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "support": int(actual[k]),
            }
            for k in range(num_classes)
        ],
    }


def pixel_confusion(y_true, y_pred, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Confusion counts (num_classes, num_classes) over labelled pixels (``ignore_index`` skipped).

    Shape:
        y_true, y_pred: any matching shape, e.g. (N, H, W).
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    keep = y_true != ignore_index
    return confusion_matrix(y_true[keep], y_pred[keep], num_classes)


def segmentation_report(cm: np.ndarray, classes=None) -> dict:
    """Pixel accuracy, per-class IoU and mean IoU of a pixel confusion matrix.

    IoU of class k = TP / (TP + FP + FN) = cm[k, k] / (row k + column k - cm[k, k]). A class
    absent from both the labels and the predictions has no IoU (None) and is left out of the
    mean, as in the usual mean-IoU definitions.

    Returns:
        dict: pixel_accuracy, miou, iou (list, None for absent classes), classes, pixels.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    total = cm.sum()
    names = list(classes) if classes else [str(i) for i in range(len(cm))]
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "iou": [float(v) if p else None for v, p in zip(iou, present, strict=True)],
        "classes": names,
        "pixels": int(total),
    }
