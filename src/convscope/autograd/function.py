"""The op-node base: every differentiable op is one :class:`Function` subclass.

A subclass writes two static methods over NumPy arrays:

* ``forward(ctx, *arrays, **options) -> ndarray`` computes the output and
  saves what backward needs as attributes of ``ctx`` (a small named context,
  dropped at once when nothing is recorded). Forward may return a tuple ``(output, extra, ...)``: the
  extras (e.g. max-pool indices) come back as Tensors without gradient;
* ``backward(ctx, grad_out) -> tuple`` returns one gradient per positional
  input, ``None`` where an input needs none (``ctx.needs_input_grad[i]`` says
  which are wanted, so work can be skipped).

``Function.apply`` wraps the arrays of the Tensor inputs, runs forward and,
when recording is on and an input requires grad, makes the context the
output's ``grad_fn``: the node of the tape. The same recorded node serves
backward, the model summary and explanations (via ``ctx.inputs``).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .grad_mode import is_grad_enabled

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_sequence = itertools.count()


def next_seq() -> int:
    """A fresh number in the node creation order (used as a marker by the analysis hooks)."""
    return next(_sequence)


class Context:
    """One node of the autograd tape.

    Attributes:
        fn: the Function subclass that made it.
        inputs: the positional inputs of the op (Tensors, or other values).
        needs_input_grad: per positional input, whether backward must return
            its gradient.
        hooks: callables run on the gradient of the output before it flows on.
        retained: a weak reference to the output tensor when it asked to keep
            its ``.grad`` (``retain_grad()``), else None.
        seq: creation order of recorded nodes (the analysis tools attribute nodes to the
            module whose forward was running).
        out_shape: shape of the op's output.
    """

    fn: type[Function]
    inputs: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]
    hooks: list[Callable[[Tensor], Tensor | npt.NDArray[Any] | None]] | None
    retained: weakref.ref[Tensor] | None
    seq: int
    out_shape: tuple[int, ...]
    released: bool

    def __init__(
        self, fn: type[Function], inputs: tuple[Any, ...], needs_input_grad: tuple[bool, ...]
    ) -> None:
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        self.hooks = None
        self.retained = None

    @property
    def name(self) -> str:
        """The op's class name, e.g. ``'Conv2dOp'``."""
        return self.fn.__name__

    def release(self) -> None:
        """Forget everything after backward: saved arrays and the inputs (the previous step's
        activations) are freed; only the op's name stays, for the error of a second backward."""
        fn = self.fn
        self.__dict__.clear()
        self.fn, self.inputs, self.released = fn, (), True

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


class Function:
    """Base class of differentiable ops; see the module docstring."""

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Any, grad_out: np.ndarray) -> tuple[Any, ...]:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Any:
        """Run the op on Tensors (or plain values) and record it on the tape.

        Returns:
            Tensor: the output; ``requires_grad`` when recording is on and any
            Tensor input requires grad. A tuple ``(output, extra, ...)`` when forward
            returns extras (hence ``Any``: the op decides which).
        """
        arrays = []
        needs = []
        any_needs = False
        for t in inputs:
            if isinstance(t, Tensor):
                arrays.append(t.data)
                n = t.requires_grad
                needs.append(n)
                any_needs = any_needs or n
            else:
                arrays.append(t)
                needs.append(False)
        record = any_needs and is_grad_enabled()
        ctx = Context(cls, inputs, tuple(needs) if record else (False,) * len(needs))
        out = cls.forward(ctx, *arrays, **options)
        extras = None
        if isinstance(out, tuple):  # (differentiable output, non-differentiable extras...)
            out, extras = out[0], out[1:]
        result = Tensor._wrap(out, record)
        if record:
            result.grad_fn = ctx
            ctx.seq = next(_sequence)
            ctx.out_shape = result.data.shape
        if extras is not None:
            return (result,) + tuple(Tensor._wrap(e, False) for e in extras)
        return result


from .tensor import Tensor  # noqa: E402  (tensor.py imports this module)
