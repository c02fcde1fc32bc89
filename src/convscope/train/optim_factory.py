"""Build the optimizer and the learning-rate scheduler named in a TrainConfig."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import optim
from ..optim import lr_scheduler
from .config import resolved

if TYPE_CHECKING:
    from ..autograd.tensor import Tensor
    from .config import TrainConfig


def make_optimizer(config: TrainConfig, params: Iterable[Tensor]) -> optim.Optimizer:
    """SGD (momentum, weight decay), Adam or AdamW from the config (its defaults filled)."""
    lr, decay = resolved(config.lr, "lr"), resolved(config.weight_decay, "weight_decay")
    kind = resolved(config.optimizer, "optimizer")
    params = list(params)
    if kind == "sgd":
        return optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=decay)
    if kind == "adam":
        return optim.Adam(params, lr=lr, weight_decay=decay)
    return optim.AdamW(params, lr=lr, weight_decay=decay)


def make_scheduler(config: TrainConfig, optimizer: optim.Optimizer) -> lr_scheduler.LRScheduler | None:
    """StepLR, MultiStepLR or CosineAnnealingLR over the run's epochs (None for 'none')."""
    epochs = resolved(config.epochs, "epochs")
    if config.scheduler == "step":
        return lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.scheduler == "multistep":
        milestones = config.milestones or [int(epochs * 0.5), int(epochs * 0.75)]
        return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    if config.scheduler == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None
