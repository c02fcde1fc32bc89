"""The degradation experiment of He et al. 2015 (Fig. 1, Table 6), in miniature.

Plain CIFAR-style networks and their residual twins (the same convolutions, batch norms and
widths; only the identity shortcuts differ) are trained at several depths with the same data,
budget, seed and data order. A deeper plain network that ends with a higher *training* loss than
a shallower one is the degradation the paper reports (not overfitting: the training set itself
is fitted worse); the residual network should not show it.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .. import random as cs_random
from ..autograd.tensor import Tensor
from ..nn import functional as F

DEFAULT_DEPTHS = (8, 20, 56)
DEFAULT_WIDTHS = (8, 16, 32)
FAMILIES = ("plain", "residual")


def parse_depths(text) -> tuple:
    """'8,20,56' -> (8, 20, 56); each must be 6n+2 with n >= 1.

    Raises:
        ValueError: anything else, naming what was received.
    """
    try:
        depths = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"--depths must be comma-separated integers like 8,20,56, got {text!r}") from None
    bad = [d for d in depths if d < 8 or (d - 2) % 6]
    if bad or not depths:
        raise ValueError(f"--depths must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, 44, 56, ...), got {text!r}")
    return depths


def load_depth_data(spec: str | None, seed: int):
    """Train/test splits at 32x32, the CIFAR networks' input (default: digits upscaled)."""
    from ..data import load_dataset

    return load_dataset(spec or "digits", seed=seed, image_size=(32, 32))


def train_one(model, splits, epochs: int, batch_size: int, lr: float, seed: int, log=None) -> dict:
    """SGD (momentum 0.9, weight decay 1e-4, cosine learning rate) for ``epochs``.

    Returns:
        dict: train_loss / train_error / test_error per epoch (lists) and seconds.
    """
    from ..data import DataLoader, Normalizer
    from ..optim import SGD
    from ..optim.lr_scheduler import CosineAnnealingLR

    norm = Normalizer.fit(splits.train.x)
    train = DataLoader(splits.train, batch_size, shuffle=True, seed=seed, normalizer=norm)
    test = DataLoader(splits.test, 256, shuffle=False, seed=seed, normalizer=norm)
    opt = SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = CosineAnnealingLR(opt, T_max=epochs * len(train))
    curves: dict = {"train_loss": [], "train_error": [], "test_error": []}
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        loss_sum, wrong, seen = 0.0, 0, 0
        for x, y in train.iter_epoch(epoch):
            logits = model(Tensor._wrap(x, False))
            loss = F.cross_entropy(logits, Tensor._wrap(y, False))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            value = loss.item()
            if not np.isfinite(value):
                raise FloatingPointError(f"the loss became {value} in epoch {epoch + 1}; try a lower --lr")
            loss_sum += value * len(y)
            wrong += int((logits.data.argmax(axis=1) != y).sum())
            seen += len(y)
        model.eval()
        test_wrong = 0
        from ..autograd.grad_mode import no_grad

        with no_grad():
            for x, y in test:
                test_wrong += int((model(Tensor._wrap(x, False)).data.argmax(axis=1) != y).sum())
        curves["train_loss"].append(loss_sum / seen)
        curves["train_error"].append(wrong / seen)
        curves["test_error"].append(test_wrong / len(splits.test))
        if log:
            log(
                f"  epoch {epoch + 1}/{epochs}: train loss {loss_sum / seen:.4f}, "
                f"test error {100 * test_wrong / len(splits.test):.2f}%"
            )
    curves["seconds"] = time.perf_counter() - start
    return curves


def run_depth_experiment(
    data: str | None = None,
    depths=DEFAULT_DEPTHS,
    epochs: int = 10,
    out: str = "runs/depth",
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 0.1,
    widths=DEFAULT_WIDTHS,
    log=None,
) -> dict:
    """Train plain and residual networks at each depth and draw the figure.

    Args:
        data (str, optional): data spec; default digits at 32x32.
        depths (tuple of int): each 6n+2.
        epochs, seed, batch_size, lr: the same for every network.
        out (str): folder for depth.png and depth.json.
        widths (tuple of 3 ints, default (8, 16, 32)): stage widths (half the paper's, for time).

    Returns:
        dict: ``results`` (family, depth, final_train_loss, final_train_accuracy, test_accuracy,
        curves, seconds) and ``figure`` (the PNG path).
    """
    from ..models.resnet_cifar import CifarResNet

    splits = load_depth_data(data, seed)
    c = splits.train.input_shape[0]
    results = []
    for depth in depths:
        for family in FAMILIES:
            cs_random.manual_seed(seed)  # same initial draw order for every network
            model = CifarResNet(
                depth, splits.num_classes, c, residual=family == "residual", widths=tuple(widths)
            )
            if log:
                log(f"{family}-{depth}:")
            curves = train_one(model, splits, epochs, batch_size, lr, seed, log)
            results.append(
                {
                    "family": family,
                    "depth": depth,
                    "final_train_loss": curves["train_loss"][-1],
                    "final_train_accuracy": 1.0 - curves["train_error"][-1],
                    "test_accuracy": 1.0 - curves["test_error"][-1],
                    "seconds": round(curves["seconds"], 2),
                    "curves": {k: v for k, v in curves.items() if k != "seconds"},
                }
            )
    os.makedirs(out, exist_ok=True)
    figure = plot_depth(results, os.path.join(out, "depth.png"), data or "digits (32x32)")
    return {
        "results": results,
        "figure": figure,
        "data": data or "digits",
        "epochs": epochs,
        "widths": list(widths),
    }


def plot_depth(results, path: str, data_name: str) -> str:
    """Training loss and test error per epoch of every network, plain left and residual right
    (dashed: training loss, solid: test error), as the paper's Fig. 1 / Fig. 4."""
    from ..plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    depths = sorted({r["depth"] for r in results})
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(depths)))
    for col, family in enumerate(FAMILIES):
        for r in (r for r in results if r["family"] == family):
            colour = colours[depths.index(r["depth"])]
            epochs = np.arange(1, len(r["curves"]["train_loss"]) + 1)
            label = f"{family}-{r['depth']}"
            axes[0, col].plot(epochs, r["curves"]["train_loss"], "--", color=colour, label=label)
            axes[1, col].plot(
                epochs, 100 * np.asarray(r["curves"]["test_error"]), "-", color=colour, label=label
            )
        axes[0, col].set_title(f"{family} networks")
        axes[0, col].set_ylabel("training loss")
        axes[1, col].set_ylabel("test error (%)")
        axes[1, col].set_xlabel("epoch")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    top = max(max(r["curves"]["train_loss"]) for r in results)
    for ax in axes[0]:
        ax.set_ylim(0, top * 1.05)
    fig.suptitle(f"Plain vs residual at several depths on {data_name} (same budget and seed)")
    return save_figure(fig, path, dpi=100)
