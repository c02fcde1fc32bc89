"""The modules an imported ONNX graph is made of, for nodes without a convscope layer of their own.

Values flowing between nodes are Tensors (the data path, recorded for backward) or NumPy integer
arrays (shape arithmetic such as Shape -> Gather -> Concat -> Reshape, evaluated at run time so
the batch size stays free). Every node module takes its inputs positionally, as the ONNX node
lists them (``None`` for an omitted optional input).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import nn
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn.parameter import Parameter


def is_tensor(v) -> bool:
    return isinstance(v, Tensor)


def as_tensor(v, like: Tensor | None = None) -> Tensor:
    """A Tensor for a value (constants take the dtype of ``like`` when floating)."""
    if isinstance(v, Tensor):
        return v
    a = np.asarray(v)
    if like is not None and a.dtype.kind == "f" and like.dtype.kind == "f":
        a = a.astype(like.dtype, copy=False)
    return Tensor._wrap(a, False)


class OnnxNode(nn.Module):
    """Base of the generic node modules: ``op_type`` names the ONNX operator.

    Args:
        op_type (str): the ONNX operator it implements.
        fn (callable): ``fn(module, *inputs)`` computing the outputs.
        attrs (dict): the node's attributes (and constant inputs) the function reads.
    """

    def __init__(self, op_type: str, fn, attrs: dict | None = None):
        super().__init__()
        self.op_type = op_type
        self.fn = fn
        self.attrs = dict(attrs or {})

    def forward(self, *inputs):
        return self.fn(self, *inputs)

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self.attrs.items() if not isinstance(v, np.ndarray) or v.size <= 8}
        return f"{self.op_type}" + (f", {shown}" if shown else "")


class ConstOperand(nn.Module):
    """A binary op with one operand stored in the module: a trainable Parameter for float weights
    (a bias added after MatMul, a per-channel scale), else a constant.

    Args:
        op_type (str): 'Add', 'Sub', 'Mul', 'Div' or 'MatMul'.
        value (ndarray): the stored operand.
        position (int): 0 when the stored operand comes first (``c - x``), 1 when second.
    """

    def __init__(self, op_type: str, value: np.ndarray | Parameter, position: int, trainable: bool):
        super().__init__()
        self.op_type, self.position = op_type, position
        if trainable:
            self.weight = value if isinstance(value, Parameter) else Parameter(value)
        else:
            self.register_buffer("weight", Tensor(value), persistent=False)

    def forward(self, x):
        a, b = (self.weight, x) if self.position == 0 else (x, self.weight)
        return binary(self.op_type, a, b)

    def extra_repr(self) -> str:
        return f"{self.op_type}, operand {self.position}, shape {tuple(self.weight.shape)}"


def binary(op_type: str, a, b):
    if not is_tensor(a) and not is_tensor(b):  # shape arithmetic
        fn: dict[str, Callable] = {
            "Add": np.add,
            "Sub": np.subtract,
            "Mul": np.multiply,
            "Div": _np_div,
            "MatMul": np.matmul,
        }
        return fn[op_type](np.asarray(a), np.asarray(b))
    like = a if is_tensor(a) else b
    a, b = as_tensor(a, like), as_tensor(b, like)
    if op_type == "Add":
        return a + b
    if op_type == "Sub":
        return a - b
    if op_type == "Mul":
        return a * b
    if op_type == "Div":
        return a / b
    return a @ b


def _np_div(a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates
    return a / b


class PaddedConv(nn.Conv2d):
    """A Conv2d whose ONNX padding is asymmetric: zeros added by an explicit pad first.

    Args:
        pre_pad (tuple): torch order (left, right, top, bottom).
        (the rest as :class:`convscope.nn.Conv2d`, built with padding=0)
    """

    def __init__(self, *args, pre_pad: tuple = (0, 0, 0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.pre_pad = tuple(int(p) for p in pre_pad)

    def forward(self, input):
        return super().forward(F.pad(input, self.pre_pad))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pre_pad={self.pre_pad}"


class PaddedMaxPool(nn.MaxPool2d):
    """A MaxPool2d with asymmetric ONNX pads, padded with -inf first (padding=0 in the pool)."""

    def __init__(self, *args, pre_pad: tuple = (0, 0, 0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.pre_pad = tuple(int(p) for p in pre_pad)

    def forward(self, input):
        return super().forward(F.pad(input, self.pre_pad, value=-np.inf))


class BatchNorm(nn.BatchNorm2d):
    """ONNX BatchNormalization: per-channel batch norm over (N, C, ...) input of any rank >= 2."""

    _ndims = (2, 3, 4, 5)  # type: ignore[assignment]  # the base class's is a 1-tuple
    _layout = "(N, C, ...)"


class GraphInputTranspose(nn.Module):
    """Marker kept where an exporter transposed an NHWC graph input to NCHW; the imported module
    takes NCHW input, so this is an identity (documented in :func:`convscope.onnx.load`)."""

    def forward(self, x):
        return x
