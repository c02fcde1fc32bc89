"""Elementwise kernels on the native backend: same functions and contracts as
:mod:`convscope.kernels.elementwise`, which computes exactly the same; read that first.

Here: ReLU forward and backward (``elementwise.c``: one pass each, where NumPy's maximum against
a scalar takes a slow broadcast loop) and the fused residual add + ReLU (one pass instead of
two, ``batchnorm.c``); the plain add is memory-bound either way and stays NumPy. Covered:
float32 C-contiguous arrays (ReLU) and two float32 arrays of the same shape (add + ReLU);
anything else raises :class:`Unsupported`.
"""

from __future__ import annotations

import numpy as np

from ._lib import f32ptr, required_library
from ._passes import plan, run_pass
from ._unsupported import Unsupported

__all__ = ["relu_forward", "relu_backward", "add_relu"]

#: Flat passes split into chunks of whole cache lines (64 floats), so two threads never share one.
LINE_FLOATS = 64


def relu_forward(x: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.relu_forward` (same contract, bit for bit).

    Raises:
        Unsupported: not a float32 C-contiguous array, or no library.
    """
    lib = required_library()
    if type(x) is not np.ndarray or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise Unsupported("native relu covers C-contiguous float32 arrays")
    out = np.empty(x.shape, np.float32)
    step, threads = plan(x.size, x.nbytes, LINE_FLOATS)
    run_pass(lib, "relu_forward", x.size, step, threads, a=f32ptr(x), out=f32ptr(out), c=1, l=1)
    return out


def relu_backward(g: np.ndarray, out: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.relu_backward` (same contract, bit for bit).

    Raises:
        Unsupported: not two float32 C-contiguous arrays of one shape, or no library.
    """
    lib = required_library()
    ok = type(g) is np.ndarray and type(out) is np.ndarray and g.shape == out.shape
    if not ok or g.dtype != np.float32 or out.dtype != np.float32:
        raise Unsupported("native relu backward covers two float32 arrays of the same shape")
    if not (g.flags.c_contiguous and out.flags.c_contiguous):
        raise Unsupported("native relu backward covers C-contiguous arrays")
    gx = np.empty(g.shape, np.float32)
    step, threads = plan(g.size, g.nbytes, LINE_FLOATS)
    arrays = {"a": f32ptr(g), "y": f32ptr(out), "out": f32ptr(gx)}
    run_pass(lib, "relu_backward", g.size, step, threads, **arrays, c=1, l=1)
    return gx


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.add_relu` (same contract).

    Raises:
        Unsupported: not two float32 arrays of one shape with a batch axis, or no library.
    """
    lib = required_library()
    arrays = type(a) is np.ndarray and type(b) is np.ndarray
    if not arrays or a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape or a.ndim < 1:
        raise Unsupported("native add_relu covers two float32 arrays of the same shape")
    p, q = np.ascontiguousarray(a), np.ascontiguousarray(b)
    out = np.empty(a.shape, np.float32)
    n = a.shape[0]
    per = a.size // max(n, 1)  # floats per image
    step, threads = plan(n, out.nbytes)
    run_pass(lib, "add_relu", n, step, threads, a=f32ptr(p), b=f32ptr(q), out=f32ptr(out), c=1, l=per)
    return out
