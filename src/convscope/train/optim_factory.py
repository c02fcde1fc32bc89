"""Build the optimizer and the learning-rate scheduler named in a TrainConfig."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import optim
from ..optim import lr_scheduler

if TYPE_CHECKING:
    from ..autograd.tensor import Tensor
    from .config import TrainConfig


def make_optimizer(config: TrainConfig, params: Iterable[Tensor]) -> optim.Optimizer:
    """SGD (momentum, weight decay), Adam or AdamW from the config."""
    if config.lr is None:  # TrainConfig.validate() fills in the optimizer's default
        raise ValueError("make_optimizer: config.lr is None; call config.validate() first")
    params = list(params)
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer: optim.Optimizer) -> lr_scheduler.LRScheduler | None:
    """StepLR, MultiStepLR or CosineAnnealingLR over the run's epochs (None for 'none')."""
    if config.scheduler == "step":
        return lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.scheduler == "multistep":
        milestones = config.milestones or [int(config.epochs * 0.5), int(config.epochs * 0.75)]
        return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    if config.scheduler == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return None
