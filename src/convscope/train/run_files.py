"""What a run writes into its folder: checkpoints (last.npz, best.npz), history.csv/json,
curve.png, and the result dict that ``Trainer.fit`` returns (and ``--json`` prints)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from typing import TYPE_CHECKING

from .. import random as cs_random
from ..checkpoint import save_checkpoint
from ..serialization import atomic_write

if TYPE_CHECKING:
    from .trainer import Trainer


def save_run(t: Trainer, path: str) -> None:
    """The checkpoint at ``path``: weights, optimizer and scheduler state, the generator, the
    history and everything needed to resume exactly or to predict (writer rank only)."""
    if not t.is_writer:
        return
    from ..optim import state_dict_to_arrays

    arrays, optim_meta = state_dict_to_arrays(t.optimizer.state_dict())
    # the generator as after the last finished batch (captured per batch): a Ctrl-C inside a
    # batch, after dropout drew its mask, must not save the later state
    t.state.setdefault("rng", cs_random.get_rng_state())
    meta = {
        "classes": t.splits.classes,
        "task": t.task.name,
        "ignore_index": getattr(t.task, "ignore_index", None),
        "preprocessing": {
            "normalizer": t.normalizer.to_dict() if t.normalizer is not None else None,
            "input_shape": list(t.splits.input_shape),
            "mode": t.config.mode,
            "image_size": t.config.image_size,
        },
        "data": {
            "spec": t.config.data,
            "spec_absolute": t.data_spec_absolute,
            "test_split": t.config.test_split,
            "seed": t.config.seed,
            "note": t.splits.note,
        },
        "history": t.history,
        "train_config": t.config.to_dict(),
        "train_state": t.state,
        "optimizer": optim_meta,
        "scheduler": t.scheduler.state_dict() if t.scheduler is not None else None,
        "processes": 1 if t.dist is None else t.dist.size,  # batch_size is per process
        "init": t.init_record,
    }
    save_checkpoint(path, t.model, meta=meta, optim_arrays=arrays)


def write_history(t: Trainer) -> None:
    """history.csv and history.json, one row per finished epoch (writer rank only)."""
    if not t.history or not t.is_writer:
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(t.history[0]))
    writer.writeheader()
    writer.writerows(t.history)
    atomic_write(os.path.join(t.out, "history.csv"), lambda f: f.write(text.getvalue().encode()))
    atomic_write(
        os.path.join(t.out, "history.json"),
        lambda f: f.write(json.dumps(t.history, indent=1).encode()),
    )


def plot_run_history(t: Trainer) -> None:
    """curve.png, drawn when the run stops (drawing it every epoch cost ~40% of a digits run)."""
    if t.history and t.is_writer:
        from .plots import plot_history

        plot_history(
            t.history,
            os.path.join(t.out, "curve.png"),
            title=f"{t.config.model} on {t.config.data}",
            label_smoothing=t.config.label_smoothing or 0.0,
        )


def run_result(t: Trainer, status: str, start: float) -> dict:
    """The summary of a run: status, test metrics, files, epochs, seconds, applied defaults."""
    last = t.history[-1] if t.history else {}
    extra = {}
    if t.task.name == "segment":
        extra = {
            "test_miou": last.get("test_miou"),
            "test_pixel_accuracy": last.get("test_pixel_accuracy"),
            "test_iou": {k[len("test_iou_") :]: v for k, v in last.items() if k.startswith("test_iou_")},
        }
    return {
        "status": status,
        "task": t.task.name,
        "test_accuracy": last.get("test_accuracy"),
        **extra,
        "best_accuracy": t.state["best_accuracy"] if t.state["best_accuracy"] >= 0 else None,
        "checkpoint": os.path.join(t.out, "best.npz"),
        "last": os.path.join(t.out, "last.npz"),
        "out": t.out,
        "epochs": len(t.history),
        "seconds": round(time.perf_counter() - start, 3),
        "defaults_applied": dict(getattr(t, "defaults_applied", {})),
        "history": t.history,
        "init": t.init_record,
    }
