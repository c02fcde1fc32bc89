"""Elementwise kernels on the native backend: same functions and contracts as
:mod:`convscope.kernels.elementwise`, which computes exactly the same; read that first.

Only the fused residual add + ReLU is here (one pass instead of two, ``batchnorm.c``); the
single passes (ReLU, add) are memory-bound either way and stay NumPy. Covered: two float32
arrays of the same shape; anything else raises :class:`Unsupported`.
"""

from __future__ import annotations

import numpy as np

from ..parallel import get_num_threads
from ._lib import f32ptr, library, run
from ._unsupported import Unsupported

__all__ = ["add_relu"]

#: Arrays smaller than this run in the calling thread (a hand-off costs more than it saves).
PARALLEL_MIN_BYTES = 512 * 1024


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.elementwise.add_relu` (same contract).

    Raises:
        Unsupported: not two float32 arrays of one shape with a batch axis, or no library.
    """
    lib = library()
    if lib is None:
        raise Unsupported("the native library is not loaded")
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
