"""dropout (torch.nn.functional name and defaults)."""

from __future__ import annotations

from ... import random as _random
from ...autograd.tensor import Tensor
from ...ops import dropout as D
from ._checks import check_tensor


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) while training.

    Identity when ``training`` is False or p == 0; all zeros when p == 1.
    """
    check_tensor(input, "dropout")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return D.DropoutOp.apply(input, float(p), _random.default_generator())
