"""Optimizers and learning-rate schedulers with PyTorch's exact update rules.

Example:
    >>> from convscope import optim
    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
    >>> loss.backward(); opt.step(); opt.zero_grad(); sched.step()
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer, state_dict_from_arrays, state_dict_to_arrays
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "lr_scheduler",
    "state_dict_to_arrays",
    "state_dict_from_arrays",
]
