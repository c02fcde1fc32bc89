"""Resuming a run: continue its own saved plan, or extend it to more epochs (--epochs N with
--resume), with the learning-rate schedule recomputed for the longer plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import random as cs_random
from ..checkpoint import load_checkpoint
from .config import TrainConfig
from .optim_factory import make_scheduler

if TYPE_CHECKING:
    from .trainer import Trainer


def plan_resume(t: Trainer, last: str, last_exists: bool, epochs: int | None) -> tuple[Any, int, str]:
    """Load ``last`` (the run's last.npz) and set ``t.config`` to the run's saved settings, its
    plan extended to ``epochs`` when given.

    Returns:
        (checkpoint, planned epochs of the saved run, the data spec to load: its absolute path)

    Raises:
        ValueError: no checkpoint, a finished run without --epochs, or --epochs not above the
            epochs already trained.
    """
    cfg, dist = t.config, t.dist
    if not last_exists:
        raise ValueError(f"--resume: no checkpoint to resume in {t.out} (expected {last})")
    ckpt = load_checkpoint(last) if dist is None else dist.load_checkpoint(last)
    saved, done = ckpt.meta.get("train_config", {}), ckpt.meta["train_state"]["epoch"]
    saved = same_global_batch(t, saved, ckpt.meta.get("processes", 1))
    planned: int = saved["epochs"]  # every saved run's config has its epochs filled
    target = planned if epochs is None else epochs
    if epochs is None and done >= planned:
        best = ckpt.meta["train_state"].get("best_accuracy", -1.0)
        raise ValueError(
            f"{t.out} is finished: it trained all {planned} of its planned epochs"
            + (f" (best test accuracy {100 * best:.2f}%)" if best >= 0 else "")
            + f"; to train further, give --epochs N with N above {done} together with --resume"
        )
    if target <= done:
        raise ValueError(
            f"--epochs {target} with --resume: the run has already trained {done} epochs; "
            f"expected more than {done} to extend it"
        )
    t.config = cfg = TrainConfig.from_dict(dict(saved, out=t.out, epochs=target)).validate()
    # the path as given may be relative to another directory: use the absolute one
    data_spec = ckpt.meta.get("data", {}).get("spec_absolute") or cfg.data
    return ckpt, planned, data_spec


def same_global_batch(t: Trainer, saved: dict, saved_processes: int) -> dict:
    """A run resumed on another number of processes keeps its global batch (exact resume)."""
    processes = 1 if t.dist is None else t.dist.size
    if "batch_size" not in saved or saved_processes == processes:
        return saved
    from ..distributed.sampler import resume_batch_size

    return dict(saved, batch_size=resume_batch_size(saved["batch_size"], saved_processes, processes))


def restore(t: Trainer, ckpt, planned: int) -> None:
    """Load the saved state; a plan extended to more epochs gets its lr schedule recomputed."""
    from ..optim import state_dict_from_arrays

    cfg = t.config
    t.history = ckpt.history
    t.state = dict(ckpt.meta["train_state"])
    t.optimizer.load_state_dict(state_dict_from_arrays(ckpt.optim_state, ckpt.meta["optimizer"]))
    done = int(t.state["epoch"])
    if cfg.epochs != planned:
        if t.scheduler is not None:
            # the lr a run planned for cfg.epochs epochs would have after `done` of them
            for group in t.optimizer.param_groups:
                group["lr"] = group.get("initial_lr", cfg.lr)
            scheduler = t.scheduler = make_scheduler(cfg, t.optimizer)
            for _ in range(done):
                if scheduler is not None:  # the same config: rebuilt as it was before
                    scheduler.step()
        lr = t.optimizer.param_groups[0]["lr"]
        t.log(
            f"resume: the plan is extended from {planned} to {cfg.epochs} epochs"
            + (
                f"; the {cfg.scheduler} learning-rate schedule is recomputed for {cfg.epochs} "
                f"epochs (lr {lr:.4g} for epoch {done + 1})"
                if t.scheduler is not None
                else ""
            )
        )
    elif t.scheduler is not None:
        t.scheduler.load_state_dict(ckpt.meta["scheduler"])
    cs_random.set_rng_state(t.state["rng"])
    where = f"epoch {done + 1} of {cfg.epochs}"
    if t.state["batch"]:
        where += f", after batch {t.state['batch']} of {len(t.train_loader)}"
    t.log(f"resuming {t.out} at {where}")
