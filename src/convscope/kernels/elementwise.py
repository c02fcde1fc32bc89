"""Elementwise kernels for large activations, split over the batch across all cores.

A single NumPy ufunc runs on one core and is limited by memory traffic; splitting a
large map into two halves processed in threads (ufuncs release the GIL) roughly
halves the time. Small arrays take the plain one-call path.
"""

from __future__ import annotations

import numpy as np

from .parallel import PASS_CHUNK_BYTES, PASS_PARALLEL_MIN_BYTES, images_per_chunk, run_chunks


def _split(a: np.ndarray):
    """Images per chunk for an (N, ...) array, or None when one call is cheaper."""
    if a.nbytes < PASS_PARALLEL_MIN_BYTES or a.ndim < 2 or a.shape[0] < 2 or not a.flags.c_contiguous:
        return None
    return images_per_chunk(a, PASS_CHUNK_BYTES)


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(x, 0), same shape and dtype."""
    step = _split(x)
    if step is None:
        return np.maximum(x, 0)
    out = np.empty_like(x)
    run_chunks(x.shape[0], step, True, lambda a, b: np.maximum(x[a:b], 0, out=out[a:b]))
    return out


def relu_backward(g: np.ndarray, out: np.ndarray) -> np.ndarray:
    """g where the ReLU's output was positive, else 0."""
    step = _split(out) if g.shape == out.shape and g.flags.c_contiguous else None
    if step is None:
        return g * (out > 0)
    gx = np.empty_like(g)
    run_chunks(g.shape[0], step, True, lambda a, b: np.multiply(g[a:b], out[a:b] > 0, out=gx[a:b]))
    return gx


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b for equal shapes (e.g. a residual connection), split over the batch.

    Anything else (broadcasting, mixed dtypes, Python scalars) is a plain ``a + b``.
    """
    arrays = type(a) is np.ndarray and type(b) is np.ndarray
    step = (
        _split(a) if arrays and a.shape == b.shape and b.flags.c_contiguous and a.dtype == b.dtype else None
    )
    if step is None:
        return a + b
    out = np.empty_like(a)
    run_chunks(a.shape[0], step, True, lambda s, e: np.add(a[s:e], b[s:e], out=out[s:e]))
    return out


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``max(a + b, 0)``: a residual connection followed by ReLU (see :func:`add`)."""
    return relu_forward(add(a, b))
