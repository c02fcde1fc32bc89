"""Batch normalisation kernels: per-channel statistics over (N, *spatial), in cache-sized chunks.

They compute what :mod:`convscope.kernels.reference.batchnorm` computes (the lecture's
formulas, in float64 sums); read that first.

Large activations are memory-bound here (one pass over a 4 MB map costs about as much as
the arithmetic of the whole layer), so each kernel makes as few passes over main memory as
it can: it works on chunks of whole images that fit in cache, runs the chunks on all cores
(:func:`convscope.kernels.parallel.run_chunks`) and writes results in place into
preallocated outputs.

Accuracy: every statistic is taken of ``d = x - m`` where ``m`` is a first (float32)
estimate of the mean. Near the mean that subtraction is exact, so a large mean never
cancels against the small deviations: the residual ``e = mean(d)`` corrects ``m`` and
``var = mean(d^2) - e^2``. Sums are BLAS dots over bounded runs, added in float64.
"""

from __future__ import annotations

import functools

import numpy as np

from .elementwise import relu_backward
from .parallel import images_per_chunk, run_chunks

CHUNK_BYTES = 256 * 1024
PARALLEL_MIN_BYTES = 512 * 1024


def _plan(x: np.ndarray):
    """(N, C, L) view of x, images per chunk, and whether to use threads."""
    x_ncl = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, *) -> (N, C, L)
    return x_ncl, images_per_chunk(x_ncl, CHUNK_BYTES), x.nbytes >= PARALLEL_MIN_BYTES


def _col(v: np.ndarray) -> np.ndarray:
    """(C,) -> (1, C, 1) to broadcast against an (n, C, L) chunk."""
    return v.reshape(1, -1, 1)


#: Longest run that one float32 BLAS dot sums (its error grows with the run length).
DOT_RUN = 4096


@functools.lru_cache(maxsize=16)
def _ones(length: int, dtype) -> np.ndarray:
    """A read-only vector of ones, made once per (length, dtype)."""
    ones = np.ones(length, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _channel_sum(a_ncl: np.ndarray) -> np.ndarray:
    """Sum of an (n, C, L) chunk over n and L, in float64 -> (C,): dots with ones."""
    return _channel_dot(a_ncl, _ones(min(a_ncl.shape[2], DOT_RUN), a_ncl.dtype))


def _channel_dot(a_ncl: np.ndarray, b_ncl: np.ndarray) -> np.ndarray:
    """Per-channel sum of ``a_ncl * b_ncl`` over n and L, in float64 -> (C,), with no temporary.

    BLAS dots (batched ``matmul`` of rows) over runs of at most :data:`DOT_RUN`
    elements, the runs and images summed in float64: 3-6x faster here than
    ``(a * b).sum()`` or ``a.sum()``. A float32 dot's error grows with the run
    (about 1e-7 of the sum of |terms| at 4096, against ~1e-8 pairwise), which is why
    the statistics are taken of centred values. ``b_ncl`` may also be one (run,) vector,
    shared by every row.
    """
    length = a_ncl.shape[2]
    total = np.zeros(a_ncl.shape[1], dtype=np.float64)
    for s in range(0, length, DOT_RUN):
        a_run = a_ncl[:, :, s : s + DOT_RUN]
        if b_ncl.ndim == 1:  # (n, C, run) @ (run,) -> (n, C)
            dots = np.matmul(a_run, b_ncl[: a_run.shape[2]])
        else:  # (n, C, 1, run) @ (n, C, run, 1) -> (n, C, 1, 1)
            dots = np.matmul(a_run[:, :, None, :], b_ncl[:, :, s : s + DOT_RUN, None])
        total += dots.reshape(a_ncl.shape[0], a_ncl.shape[1]).sum(axis=0, dtype=np.float64)
    return total


def _stats(parts, count):
    """Per-channel float64 means of the (sum, sum of squares...) tuples returned by chunks."""
    return [np.sum([p[i] for p in parts], axis=0) / count for i in range(len(parts[0]))]


def batch_norm_train_forward(x: np.ndarray, weight, bias, eps: float, relu: bool = False):
    """Normalise with the batch's own statistics (then ReLU, if ``relu``).

    Args:
        x (ndarray): (N, C) or (N, C, *spatial).
        weight, bias (ndarray or None): (C,) affine parameters.
        eps (float): added to the variance.
        relu (bool): ``out = max(normalised, 0)``, as :func:`convscope.kernels.elementwise.relu_forward`
            gives it bit for bit (in the same chunk pass here).

    Shape:
        out like x; mean, var (biased) and invstd (C,).

    Returns:
        (out, mean, var, invstd) in x's dtype. Backward recomputes the centred input from
        x and mean chunk by chunk in cache, so no activation-sized ``xhat`` is kept.

    Two passes over x (plus one over its first chunk, for a shift ``m`` near the mean):
    ``out = d = x - m`` with the sums of d and d^2; ``out = d * a + (bias - e * a)`` with
    ``a = invstd * weight`` and ``e = mean(d)``.
    """
    x_ncl, step, parallel = _plan(x)
    n, c, length = x_ncl.shape
    count = n * length
    # the shift m only has to be near the mean (the residual e corrects it exactly): the
    # first chunk's mean is, to within a few standard deviations of the whole batch
    first = x_ncl[:step]
    m = (_channel_sum(first) / (first.shape[0] * length)).astype(x.dtype)
    out = np.empty_like(x_ncl)
    m_b = _col(m)

    def centre(a, b):
        d = np.subtract(x_ncl[a:b], m_b, out=out[a:b])
        return _channel_sum(d), _channel_dot(d, d)

    e, sq = _stats(run_chunks(n, step, parallel, centre), count)
    var = np.maximum(sq - e * e, 0.0)  # float64
    invstd = 1 / np.sqrt(var + eps)
    a = invstd if weight is None else invstd * weight
    shift = -e * a if bias is None else bias - e * a
    a_b, shift_b = _col(a.astype(x.dtype)), _col(shift.astype(x.dtype))

    def scale(i, j):
        o = np.multiply(out[i:j], a_b, out=out[i:j])
        np.add(o, shift_b, out=o)
        if relu:
            np.maximum(o, 0, out=o)

    run_chunks(n, step, parallel, scale)
    return (out.reshape(x.shape), (m + e).astype(x.dtype), var.astype(x.dtype), invstd.astype(x.dtype))


def batch_norm_train_backward(
    g: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight,
    need_input: bool = True,
    relu_out: np.ndarray | None = None,
):
    """Gradients of :func:`batch_norm_train_forward`.

    With ``relu_out`` (the forward's output when it ran with ``relu``), g is first ReLU's
    gradient, :func:`convscope.kernels.elementwise.relu_backward` ``(g, relu_out)``.

    ``dx = scale * (g - mean(g) - xhat * mean(g * xhat))`` per channel, with
    ``scale = weight * invstd`` and ``xhat = (x - mean) * invstd``;
    ``dweight = sum(g * xhat)``, ``dbias = sum(g)``. With ``d = x - mean`` (in x's dtype,
    exact near the mean; kept in the dx buffer between the two passes) and its residual
    mean ``e`` (mean is rounded), computed as ``dx = g * scale - (d * k + (scale * mean(g)
    - e * k))``, ``k = scale * invstd * mean(g * xhat)``: no large terms cancel, whatever
    the mean.

    Returns:
        (grad_input or None, grad_weight (C,), grad_bias (C,)).
    """
    if relu_out is not None:
        g = relu_backward(g, relu_out)
    g_ncl, step, parallel = _plan(g)
    x_ncl = x.reshape(g_ncl.shape)
    n, c, length = g_ncl.shape
    count = n * length
    mean_b = _col(mean)
    gx = np.empty_like(g_ncl) if need_input else None  # first holds d, then becomes dx

    def sums(a, b):
        ga = g_ncl[a:b]
        d = np.subtract(x_ncl[a:b], mean_b, out=None if gx is None else gx[a:b])
        return _channel_sum(ga), _channel_dot(ga, d), _channel_sum(d)

    g_mean, gd_mean, e = _stats(run_chunks(n, step, parallel, sums), count)
    inv = invstd.astype(np.float64)
    gxhat_mean = (gd_mean - e * g_mean) * inv  # mean(g * xhat), float64
    dtype = g.dtype
    if gx is not None:  # need_input
        scale = inv if weight is None else inv * weight
        k = scale * inv * gxhat_mean
        neg_k_b = _col((-k).astype(dtype))
        c_b = _col((scale * g_mean - e * k).astype(dtype))
        s_b = _col(scale.astype(dtype))
        d_ncl = gx  # holds d; becomes dx

        def grad(a: int, b: int) -> None:
            o = np.multiply(d_ncl[a:b], neg_k_b, out=d_ncl[a:b])  # -d * k
            o -= c_b
            o += np.multiply(g_ncl[a:b], s_b)

        run_chunks(n, step, parallel, grad)
        gx = d_ncl.reshape(g.shape)
    return gx, (gxhat_mean * count).astype(dtype), (g_mean * count).astype(dtype)


def channel_affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x * scale + shift`` per channel (axis 1), chunked: BatchNorm in eval mode.

    Shape:
        x (N, C, *); scale, shift (C,) -> like x.
    """
    x_ncl, step, parallel = _plan(x)
    out = np.empty_like(x_ncl)
    s_b, t_b = _col(scale.astype(x.dtype)), _col(shift.astype(x.dtype))

    def body(a, b):
        o = np.multiply(x_ncl[a:b], s_b, out=out[a:b])
        np.add(o, t_b, out=o)

    run_chunks(x_ncl.shape[0], step, parallel, body)
    return out.reshape(x.shape)


def channel_affine_relu(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``max(x * scale + shift, 0)`` per channel: BatchNorm in eval mode followed by ReLU.

    The native backend does it in one pass; here it is :func:`channel_affine` then the ReLU
    pass (the same values).

    Shape:
        x (N, C, *); scale, shift (C,) -> like x.
    """
    out = channel_affine(x, scale, shift)
    return np.maximum(out, 0, out=out)


def channel_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Per-channel sum of ``a`` (or of ``a * b``) over every axis but 1 -> (C,) in a's dtype."""
    a_ncl, step, parallel = _plan(a)
    b_ncl = None if b is None else b.reshape(a_ncl.shape)
    parts = run_chunks(
        a_ncl.shape[0],
        step,
        parallel,
        lambda s, e: _channel_sum(a_ncl[s:e]) if b_ncl is None else _channel_dot(a_ncl[s:e], b_ncl[s:e]),
    )
    return np.sum(parts, axis=0).astype(a.dtype)
