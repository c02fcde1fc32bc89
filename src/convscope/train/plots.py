"""Figures for training: the learning curve and the confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

import textwrap

import numpy as np

from ..plotting import pyplot as _plt
from ..plotting import save_figure


def plot_history(history: list, path, title: str = "Training curve", label_smoothing: float = 0.0) -> None:
    """Loss (left) and accuracy (right) per epoch for the training and test splits.

    With label smoothing the training loss is the smoothed cross-entropy the optimizer saw and
    the test loss is the plain one; the legend says so (the smoothed loss has a floor above 0).
    """
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 4))
    smoothed = f"train (label-smoothed, {label_smoothing:g})" if label_smoothing else "train"
    ax_l.plot(epochs, [h["train_loss"] for h in history], "o-", label=smoothed)
    if all("test_loss" in h for h in history):
        ax_l.plot(
            epochs,
            [h["test_loss"] for h in history],
            "s-",
            label="test (plain)" if label_smoothing else "test",
        )
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("cross-entropy loss")
    ax_l.set_title("Loss")
    ax_l.legend()
    ax_l.grid(alpha=0.3)
    ax_a.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    if all("test_accuracy" in h for h in history):
        ax_a.plot(epochs, [100 * h["test_accuracy"] for h in history], "s-", label="test")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy (%)")
    ax_a.set_title("Accuracy")
    ax_a.legend()
    ax_a.grid(alpha=0.3)
    for ax in (ax_l, ax_a):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_confusion(matrix, classes, path, title: str = "Confusion matrix") -> None:
    """Counts with true classes as rows and predictions as columns; each cell is labelled."""
    plt = _plt()
    cm = np.asarray(matrix)
    k = cm.shape[0]
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(
        range(k), [str(c) for c in classes], rotation=45 if k > 10 else 0, ha="right" if k > 10 else "center"
    )
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = np.trace(cm) / max(cm.sum(), 1)
    # over the whole figure (axes and colour bar), wrapped to its width: long data paths fit
    heading = f"{title} (accuracy {100 * acc:.2f}%, {int(cm.sum())} images)"
    fig.suptitle(textwrap.fill(heading, width=int(9 * (size + 1))), fontsize=11)
    if k <= 20:
        peak = cm.max() if cm.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(int(cm[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cm[i, j] > peak / 2 else "black",
                )
    fig.colorbar(im, ax=ax, label="images")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
