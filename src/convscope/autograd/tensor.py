"""Tensor: a NumPy array plus the autograd bookkeeping.

float32 by default: Python floats and float64 arrays passed to
:func:`tensor` become float32 unless a dtype is asked for explicitly, and
Python scalars in arithmetic take the tensor's dtype, so nothing silently
becomes float64 (NumPy 2 would upcast ``float32_array * np.float64``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union, overload

import numpy as np
import numpy.typing as npt

from .grad_mode import is_grad_enabled

if TYPE_CHECKING:
    from .function import Context

#: A Python number (named here because ``Tensor.float`` shadows ``float`` inside the class).
Scalar = float
#: What arithmetic accepts beside a Tensor (Python scalars take the tensor's dtype).
TensorOperand = Union["Tensor", float, npt.NDArray[Any], np.generic]
#: A dtype argument: a NumPy dtype, a scalar type such as ``np.float32``, or a name.
DTypeLike = npt.DTypeLike

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)


def _default_dtype(array: np.ndarray) -> np.dtype:
    kind = array.dtype.kind
    if kind == "f":
        return float32
    if kind in "iu":
        return int64
    if kind == "b":
        return bool_
    raise TypeError(f"tensor data must be numeric or bool, got array of dtype {array.dtype}")


def tensor(data: Any, dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Make a new Tensor from data (copied).

    Args:
        data: a number, nested list, NumPy array or Tensor.
        dtype (NumPy dtype or None): None picks float32 for any floating
            data (float64 included: ask for ``convscope.float64`` explicitly),
            int64 for integers, bool for booleans.
        requires_grad (bool, default False): record ops for backward.

    Example:
        >>> convscope.tensor([[1.0, 2.0]]).shape
        (1, 2)
    """
    if isinstance(data, Tensor):
        data = data.data
    array = np.array(data)
    array = array.astype(np.dtype(dtype) if dtype is not None else _default_dtype(array), copy=False)
    if requires_grad and array.dtype.kind != "f":
        raise TypeError(f"only floating-point tensors can require gradients, got dtype {array.dtype}")
    return Tensor(array, requires_grad=requires_grad)


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Attributes:
        data (ndarray): the values.
        grad (Tensor or None): accumulated gradient after ``backward()``.
        requires_grad (bool): whether ops on it are recorded.
        grad_fn: the tape node that produced it (None for leaves).
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor

    data: npt.NDArray[Any]
    grad: Tensor | None
    requires_grad: bool
    grad_fn: Context | None

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if not isinstance(data, np.ndarray):
            data = np.asarray(data)
            if data.dtype == np.float64:
                data = data.astype(np.float32)
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None

    @classmethod
    def _wrap(cls, array: Any, requires_grad: bool) -> Tensor:
        t = Tensor.__new__(Tensor)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.grad = None
        t.requires_grad = requires_grad
        t.grad_fn = None
        return t

    # ------------------------------------------------------------------ info
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    @overload
    def size(self, dim: None = None) -> tuple[int, ...]: ...
    @overload
    def size(self, dim: int) -> int: ...
    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != float32:
            extra += f", dtype={self.data.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------ conversion
    def numpy(self) -> npt.NDArray[Any]:
        """The values as a NumPy array (shares memory; no gradient tracking)."""
        return self.data

    def item(self) -> int | float | bool:
        """The single value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def tolist(self) -> Any:  # nested lists of Python numbers (a number for 0-d)
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same values, cut from the tape (shares memory)."""
        return Tensor._wrap(self.data, False)

    def clone(self) -> Tensor:
        from ..ops.math import MulOp

        return MulOp.apply(self, np.ones((), dtype=self.dtype))

    def to(self, dtype: DTypeLike) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        from ..ops.cast import CastOp

        return CastOp.apply(self, dtype)

    def float(self) -> Tensor:
        return self.to(float32)

    def double(self) -> Tensor:
        return self.to(float64)

    def long(self) -> Tensor:
        return Tensor._wrap(self.data.astype(np.int64), False)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = flag
        return self

    # --------------------------------------------------------------- autograd
    def backward(self, gradient: Tensor | npt.ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        Args:
            gradient (Tensor or array, optional): upstream gradient, required
                unless the tensor has one element.
            retain_graph (bool, default False): keep saved values for another backward.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: "
                "no input of the computation had requires_grad=True"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, got shape {self.shape}"
                )
            gradient = np.ones(self.shape, dtype=self.dtype)
        else:
            gradient = np.asarray(
                gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype
            )
            if gradient.shape != self.shape:
                raise ValueError(
                    f"backward(): gradient of shape {gradient.shape} does not match "
                    f"the tensor's shape {self.shape}"
                )
        if self.grad_fn is None:
            self._accumulate_leaf(gradient)
            return
        from .engine import run_backward

        run_backward(self, gradient, retain_graph=retain_graph)

    def _accumulate_leaf(self, g: npt.NDArray[Any]) -> None:
        if g.dtype != self.data.dtype:
            g = g.astype(self.data.dtype)
        if self.grad is None:
            self.grad = Tensor._wrap(np.array(g, copy=True).reshape(self.shape), False)
        else:
            self.grad.data += g

    _accumulate_grad = _accumulate_leaf

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (used by Grad-CAM)."""
        if self.grad_fn is not None:
            self.grad_fn.retained = weakref.ref(self)

    def register_hook(self, hook: Callable[[Tensor], Tensor | npt.NDArray[Any] | None]) -> None:
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a replacement."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        if self.grad_fn is None:
            raise RuntimeError("register_hook is supported on non-leaf tensors only")
        if self.grad_fn.hooks is None:
            self.grad_fn.hooks = []
        self.grad_fn.hooks.append(hook)

    def zero_(self) -> Tensor:
        self._check_inplace()
        self.data[...] = 0
        return self

    def _check_inplace(self) -> None:
        if self.requires_grad and is_grad_enabled() and self.grad_fn is None:
            raise RuntimeError(
                "in-place change of a leaf tensor that requires grad; wrap it in convscope.no_grad()"
            )

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_inplace()
        self.data[_key(key)] = value.data if isinstance(value, Tensor) else value

    __hash__ = object.__hash__

    if TYPE_CHECKING:  # attached at import by tensor_methods.py; declared here for type checkers

        def __add__(self, other: TensorOperand) -> Tensor: ...
        def __radd__(self, other: TensorOperand) -> Tensor: ...
        def __sub__(self, other: TensorOperand) -> Tensor: ...
        def __rsub__(self, other: TensorOperand) -> Tensor: ...
        def __mul__(self, other: TensorOperand) -> Tensor: ...
        def __rmul__(self, other: TensorOperand) -> Tensor: ...
        def __matmul__(self, other: TensorOperand) -> Tensor: ...
        def __rmatmul__(self, other: TensorOperand) -> Tensor: ...
        def __truediv__(self, other: TensorOperand) -> Tensor: ...
        def __rtruediv__(self, other: TensorOperand) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __pos__(self) -> Tensor: ...
        def __pow__(self, exponent: Scalar) -> Tensor: ...
        def __lt__(self, other: TensorOperand) -> Tensor: ...
        def __le__(self, other: TensorOperand) -> Tensor: ...
        def __gt__(self, other: TensorOperand) -> Tensor: ...
        def __ge__(self, other: TensorOperand) -> Tensor: ...
        # elementwise, as in NumPy and PyTorch: object's bool-returning signature does not apply
        def __eq__(self, other: object) -> Tensor: ...  # type: ignore[override]
        def __ne__(self, other: object) -> Tensor: ...  # type: ignore[override]
        def __getitem__(self, key: Any) -> Tensor: ...
        def add(self, other: TensorOperand) -> Tensor: ...
        def sub(self, other: TensorOperand) -> Tensor: ...
        def mul(self, other: TensorOperand) -> Tensor: ...
        def div(self, other: TensorOperand) -> Tensor: ...
        def matmul(self, other: TensorOperand) -> Tensor: ...
        def pow(self, exponent: Scalar) -> Tensor: ...
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def sqrt(self) -> Tensor: ...
        def abs(self) -> Tensor: ...
        def clamp(self, min: Scalar | None = None, max: Scalar | None = None) -> Tensor: ...
        def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor: ...
        def mean(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor: ...
        def var(
            self,
            dim: int | tuple[int, ...] | None = None,
            unbiased: bool = True,
            keepdim: bool = False,
            correction: int | None = None,
        ) -> Tensor: ...
        def std(
            self, dim: int | tuple[int, ...] | None = None, unbiased: bool = True, keepdim: bool = False
        ) -> Tensor: ...
        @overload
        def max(self, dim: None = None, keepdim: bool = False) -> Tensor: ...
        @overload
        def max(self, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]: ...
        def max(self, dim: int | None = None, keepdim: bool = False) -> Tensor | tuple[Tensor, Tensor]: ...
        @overload
        def min(self, dim: None = None, keepdim: bool = False) -> Tensor: ...
        @overload
        def min(self, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]: ...
        def min(self, dim: int | None = None, keepdim: bool = False) -> Tensor | tuple[Tensor, Tensor]: ...
        def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor: ...
        def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor: ...
        def reshape(self, *shape: int | Sequence[int]) -> Tensor: ...
        def view(self, *shape: int | Sequence[int]) -> Tensor: ...
        def permute(self, *dims: int | Sequence[int]) -> Tensor: ...
        def transpose(self, dim0: int, dim1: int) -> Tensor: ...
        def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor: ...
        def unsqueeze(self, dim: int) -> Tensor: ...
        def squeeze(self, dim: int | None = None) -> Tensor: ...
        def expand(self, *shape: int | Sequence[int]) -> Tensor: ...
        def relu(self) -> Tensor: ...
        def sigmoid(self) -> Tensor: ...
        def tanh(self) -> Tensor: ...
        def softmax(self, dim: int | None = None) -> Tensor: ...
        def log_softmax(self, dim: int | None = None) -> Tensor: ...


def _key(key: Any) -> Any:
    """Index keys may contain Tensors (e.g. label tensors); use their arrays."""
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key


from . import tensor_methods  # noqa: E402,F401  (attaches the operator methods)
