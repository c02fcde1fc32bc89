"""Classification metrics: accuracy, confusion matrix, per-class precision and recall."""

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
