"""Batch normalisation kernels: per-channel statistics over (N, *spatial), in cache-sized chunks.

Large activations are memory-bound here (one pass over a 4 MB map costs about as much as
the arithmetic of the whole layer), so each kernel makes as few passes over main memory as
it can: it works on chunks of whole images that fit in cache, runs the chunks on all cores
(:func:`convscope.kernels.parallel.run_chunks`) and writes results in place into
preallocated outputs. Sums use NumPy's pairwise summation within a chunk and float64 across
chunks, so the statistics are as accurate as a single ``x.mean(axis=(0, 2, 3))``.
"""
from __future__ import annotations

import numpy as np

from .parallel import images_per_chunk, run_chunks

CHUNK_BYTES = 256 * 1024
PARALLEL_MIN_BYTES = 512 * 1024


def _plan(x: np.ndarray):
    """(N, C, L) view of x, images per chunk, and whether to use threads."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1)        # (N, C, *) -> (N, C, L)
    return x3, images_per_chunk(x3, CHUNK_BYTES), x.nbytes >= PARALLEL_MIN_BYTES


def _col(v: np.ndarray) -> np.ndarray:
    """(C,) -> (1, C, 1) to broadcast against an (n, C, L) chunk."""
    return v.reshape(1, -1, 1)


#: Longest run that one float32 BLAS dot sums (its error grows with the run length).
DOT_RUN = 4096


def _channel_sum(a3: np.ndarray) -> np.ndarray:
    """Sum of an (n, C, L) chunk over n and L, in float64 -> (C,): dots with ones."""
    return _channel_dot(a3, np.ones(min(a3.shape[2], DOT_RUN), dtype=a3.dtype))


def _channel_dot(a3: np.ndarray, b3: np.ndarray) -> np.ndarray:
    """Per-channel sum of ``a3 * b3`` over n and L, in float64 -> (C,), with no temporary.

    BLAS dots (batched ``matmul`` of rows) over runs of at most :data:`DOT_RUN`
    elements, the runs and images summed in float64: 3-6x faster here than
    ``(a * b).sum()`` or ``a.sum()`` and as accurate (measured 3e-8 relative on
    1024-element runs). ``b3`` may also be one (run,) vector, shared by every row.
    """
    l = a3.shape[2]
    total = np.zeros(a3.shape[1], dtype=np.float64)
    for s in range(0, l, DOT_RUN):
        a_run = a3[:, :, s:s + DOT_RUN]
        if b3.ndim == 1:  # (n, C, run) @ (run,) -> (n, C)
            dots = np.matmul(a_run, b3[:a_run.shape[2]])
        else:             # (n, C, 1, run) @ (n, C, run, 1) -> (n, C, 1, 1)
            dots = np.matmul(a_run[:, :, None, :], b3[:, :, s:s + DOT_RUN, None])
        total += dots.reshape(a3.shape[0], a3.shape[1]).sum(axis=0, dtype=np.float64)
    return total


def batch_norm_train_forward(x: np.ndarray, weight, bias, eps: float):
    """Normalise with the batch's own statistics.

    Args:
        x (ndarray): (N, C) or (N, C, *spatial).
        weight, bias (ndarray or None): (C,) affine parameters.
        eps (float): added to the variance.

    Shape:
        out like x; mean, var (biased) and invstd (C,).

    Returns:
        (out, mean, var, invstd). Backward recomputes the centred input from x and mean
        chunk by chunk in cache, so no activation-sized ``xhat`` is kept.

    Three passes: the sums; ``out = x - mean`` with the sum of its squares (two-pass
    variance, exact where ``E[x^2] - mean^2`` would cancel); ``out = out * a + b`` with
    ``a = invstd * weight``.
    """
    x3, step, parallel = _plan(x)
    n, c, l = x3.shape
    count = n * l
    dtype = x.dtype.type
    sums = run_chunks(n, step, parallel, lambda a, b: _channel_sum(x3[a:b]))
    mean = (np.sum(sums, axis=0) / count).astype(x.dtype)
    out = np.empty_like(x3)
    mean_b = _col(mean)

    def centre(a, b):
        d = np.subtract(x3[a:b], mean_b, out=out[a:b])
        return _channel_dot(d, d)
    var = (np.sum(run_chunks(n, step, parallel, centre), axis=0) / count).astype(x.dtype)
    invstd = (1 / np.sqrt(var + dtype(eps))).astype(x.dtype)
    a_b = _col(invstd if weight is None else invstd * weight)
    b_b = None if bias is None else _col(bias)

    def scale(a, b):
        o = np.multiply(out[a:b], a_b, out=out[a:b])
        if b_b is not None:
            np.add(o, b_b, out=o)
    run_chunks(n, step, parallel, scale)
    return out.reshape(x.shape), mean, var, invstd


def batch_norm_train_backward(g: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray,
                              weight, need_input: bool = True):
    """Gradients of :func:`batch_norm_train_forward`.

    ``dx = scale * (g - mean(g) - xhat * mean(g * xhat))`` per channel, with
    ``scale = weight * invstd`` and ``xhat = (x - mean) * invstd``;
    ``dweight = sum(g * xhat)``, ``dbias = sum(g)``. Computed as
    ``dx = g * scale - (x * k + c)`` with ``k = scale * invstd * mean(g * (x - mean))``
    and ``c = scale * mean(g) - mean * k`` (four elementwise passes per chunk).

    Returns:
        (grad_input or None, grad_weight (C,), grad_bias (C,)).
    """
    g3, step, parallel = _plan(g)
    x3 = x.reshape(g3.shape)
    n, c, l = g3.shape
    count = n * l
    mean_b = _col(mean)

    def sums(a, b):
        ga = g3[a:b]
        return _channel_sum(ga), _channel_dot(ga, x3[a:b] - mean_b)
    parts = run_chunks(n, step, parallel, sums)
    gsum = np.sum([p[0] for p in parts], axis=0)
    gxsum = np.sum([p[1] for p in parts], axis=0) * invstd  # sum(g * xhat), float64
    dtype = g.dtype
    gx = None
    if need_input:
        scale = invstd if weight is None else invstd * weight
        k_x = scale * invstd * (gxsum / count)
        k_b = _col(k_x.astype(dtype))
        c_b = _col((scale * (gsum / count) - mean * k_x).astype(dtype))  # k_0 - mean * k
        s_b = _col(scale.astype(dtype))
        gx = np.empty_like(g3)

        def grad(a, b):
            d = np.multiply(x3[a:b], k_b)
            d += c_b
            np.subtract(np.multiply(g3[a:b], s_b, out=gx[a:b]), d, out=gx[a:b])
        run_chunks(n, step, parallel, grad)
        gx = gx.reshape(g.shape)
    return gx, gxsum.astype(dtype), gsum.astype(dtype)


def channel_affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x * scale + shift`` per channel (axis 1), chunked: BatchNorm in eval mode.

    Shape:
        x (N, C, *); scale, shift (C,) -> like x.
    """
    x3, step, parallel = _plan(x)
    out = np.empty_like(x3)
    s_b, t_b = _col(scale.astype(x.dtype)), _col(shift.astype(x.dtype))

    def body(a, b):
        o = np.multiply(x3[a:b], s_b, out=out[a:b])
        np.add(o, t_b, out=o)
    run_chunks(x3.shape[0], step, parallel, body)
    return out.reshape(x.shape)


def channel_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Per-channel sum of ``a`` (or of ``a * b``) over every axis but 1 -> (C,) in a's dtype."""
    a3, step, parallel = _plan(a)
    b3 = None if b is None else b.reshape(a3.shape)
    parts = run_chunks(a3.shape[0], step, parallel,
                       lambda s, e: _channel_sum(a3[s:e]) if b3 is None else _channel_dot(a3[s:e], b3[s:e]))
    return np.sum(parts, axis=0).astype(a.dtype)
