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

from ..parallel import get_num_threads
from ._lib import f32ptr, library, run
from ._unsupported import Unsupported

__all__ = ["relu_forward", "relu_backward", "add_relu"]

#: Arrays smaller than this run in the calling thread (a hand-off costs more than it saves).
PARALLEL_MIN_BYTES = 512 * 1024
#: ReLU passes smaller than this run in the calling thread (one pass is ~25 GB/s per core).
RELU_PARALLEL_MIN_BYTES = 2 * 2**20


def _lib():
    lib = library()
    if lib is None:
        raise Unsupported("the native library is not loaded")
    return lib


def _flat_run(size: int, body) -> None:
    """body(start, stop) over the flat range [0, size): in threads from RELU_PARALLEL_MIN_BYTES on,
    in chunks of whole cache lines (64 floats) so two threads never share one."""
    threads = get_num_threads()
    parallel = size * 4 >= RELU_PARALLEL_MIN_BYTES and threads > 1
    step = -(-size // (2 * threads)) if parallel else max(size, 1)
    run(size, -(-step // 64) * 64 if parallel else step, parallel, body)


def relu_forward(x: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.relu_forward` (same contract, bit for bit).

    Raises:
        Unsupported: not a float32 C-contiguous array, or no library.
    """
    lib = _lib()
    if type(x) is not np.ndarray or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise Unsupported("native relu covers C-contiguous float32 arrays")
    out = np.empty(x.shape, np.float32)
    xf, of = x.reshape(-1), out.reshape(-1)  # (N, *) -> (N*...,) views of the same memory
    _flat_run(x.size, lambda a, b: lib.cs_relu_forward(f32ptr(xf[a:b]), f32ptr(of[a:b]), b - a))
    return out


def relu_backward(g: np.ndarray, out: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.relu_backward` (same contract, bit for bit).

    Raises:
        Unsupported: not two float32 C-contiguous arrays of one shape, or no library.
    """
    lib = _lib()
    ok = type(g) is np.ndarray and type(out) is np.ndarray and g.shape == out.shape
    if not ok or g.dtype != np.float32 or out.dtype != np.float32:
        raise Unsupported("native relu backward covers two float32 arrays of the same shape")
    if not (g.flags.c_contiguous and out.flags.c_contiguous):
        raise Unsupported("native relu backward covers C-contiguous arrays")
    gx = np.empty(g.shape, np.float32)
    gf, of, xf = g.reshape(-1), out.reshape(-1), gx.reshape(-1)  # flat views, same memory
    _flat_run(
        g.size, lambda a, b: lib.cs_relu_backward(f32ptr(gf[a:b]), f32ptr(of[a:b]), f32ptr(xf[a:b]), b - a)
    )
    return gx


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.add_relu` (same contract).

    Raises:
        Unsupported: not two float32 arrays of one shape with a batch axis, or no library.
    """
    lib = _lib()
    arrays = type(a) is np.ndarray and type(b) is np.ndarray
    if not arrays or a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape or a.ndim < 1:
        raise Unsupported("native add_relu covers two float32 arrays of the same shape")
    p, q = np.ascontiguousarray(a), np.ascontiguousarray(b)
    out = np.empty(a.shape, np.float32)
    n = a.shape[0]
    per = a.size // max(n, 1)
    p2, q2, o2 = p.reshape(n, per), q.reshape(n, per), out.reshape(n, per)
    threads = get_num_threads()
    parallel = out.nbytes >= PARALLEL_MIN_BYTES and threads > 1 and n > 1

    def body(s: int, e: int) -> None:
        lib.cs_add_relu(f32ptr(p2[s:e]), f32ptr(q2[s:e]), f32ptr(o2[s:e]), (e - s) * per)

    run(n, max(1, -(-n // (2 * threads))) if parallel else max(n, 1), parallel, body)
    return out
