"""Batch normalisation on the native backend: same functions and contracts as
:mod:`convscope.kernels.batchnorm`, which computes exactly the same; read that first.

Each pass is one C loop over (image, channel) rows (``batchnorm.c``); statistics are taken
of ``d = x - m`` with ``m`` near the mean and summed in double. Chunks of images run on
convscope's worker threads. Covered: float32; anything else raises :class:`Unsupported`.
"""

from __future__ import annotations

import numpy as np

from ..parallel import get_num_threads
from ._lib import f32ptr, library, run
from ._lib import f64ptr as _f64ptr
from ._unsupported import Unsupported

__all__ = [
    "batch_norm_train_forward",
    "batch_norm_train_backward",
    "channel_affine",
    "channel_affine_relu",
    "channel_sums",
]

#: Arrays smaller than this run in the calling thread (a hand-off costs more than it saves).
PARALLEL_MIN_BYTES = 512 * 1024
#: Images whose mean is the shift m of the statistics (near the batch mean; exactness does
#: not depend on it, only how little cancels).
SHIFT_IMAGES = 8


def _lib():
    lib = library()
    if lib is None:
        raise Unsupported("the native library is not loaded")
    return lib


def _rows(a: np.ndarray) -> np.ndarray:
    """float32 (N, C, L) contiguous view/copy of a (N, C, *) array."""
    if a.dtype != np.float32:
        raise Unsupported(f"native batch norm covers float32 only, got {a.dtype}")
    if a.ndim < 2:
        raise Unsupported("native batch norm expects (N, C, *) arrays")
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _chunks(a3: np.ndarray) -> tuple[int, bool]:
    n = a3.shape[0]
    threads = get_num_threads()
    parallel = a3.nbytes >= PARALLEL_MIN_BYTES and threads > 1 and n > 1
    return (max(1, -(-n // (2 * threads))) if parallel else max(n, 1)), parallel


def _vec(v, c: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float32), (c,)))


def _sums(lib, a3: np.ndarray, count: int) -> np.ndarray:
    """Per-channel float64 sums of a3's first ``count`` images."""
    _, c, length = a3.shape
    s = np.zeros(c)
    lib.cs_channel_sums(f32ptr(a3), count, c, length, _f64ptr(s))
    return s


def batch_norm_train_forward(x: np.ndarray, weight, bias, eps: float):
    """See :func:`convscope.kernels.batchnorm.batch_norm_train_forward` (same contract).

    Raises:
        Unsupported: not float32, or the library is not loaded.
    """
    lib = _lib()
    x3 = _rows(x)
    n, c, length = x3.shape
    count = n * length
    first = min(n, SHIFT_IMAGES)
    m = (_sums(lib, x3, first) / max(first * length, 1)).astype(np.float32)
    step, parallel = _chunks(x3)

    def stats(a: int, b: int):
        s1, s2 = np.zeros(c), np.zeros(c)
        lib.cs_bn_stats(f32ptr(x3[a:b]), b - a, c, length, f32ptr(m), _f64ptr(s1), _f64ptr(s2))
        return s1, s2

    parts = run(n, step, parallel, stats)
    e = np.sum([p[0] for p in parts], axis=0) / count
    sq = np.sum([p[1] for p in parts], axis=0) / count
    var = np.maximum(sq - e * e, 0.0)
    invstd = 1 / np.sqrt(var + eps)
    a_ = invstd if weight is None else invstd * weight
    shift = -e * a_ if bias is None else bias - e * a_
    a32, shift32 = _vec(a_, c), _vec(shift, c)
    out = np.empty_like(x3)

    def apply(a: int, b: int) -> None:
        xs, os_ = x3[a:b], out[a:b]
        lib.cs_bn_apply(f32ptr(xs), f32ptr(os_), b - a, c, length, f32ptr(m), f32ptr(a32), f32ptr(shift32))

    run(n, step, parallel, apply)
    f32 = np.float32
    return out.reshape(x.shape), (m + e).astype(f32), var.astype(f32), invstd.astype(f32)


def batch_norm_train_backward(
    g: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray, weight, need_input: bool = True
):
    """See :func:`convscope.kernels.batchnorm.batch_norm_train_backward` (same contract).

    Raises:
        Unsupported: not float32, or the library is not loaded.
    """
    lib = _lib()
    g3, x3 = _rows(g), _rows(x)
    n, c, length = g3.shape
    count = n * length
    mean32 = _vec(mean, c)
    step, parallel = _chunks(g3)

    def sums(a: int, b: int):
        sg, sgd, sd = np.zeros(c), np.zeros(c), np.zeros(c)
        gs, xs = g3[a:b], x3[a:b]
        sums_out = _f64ptr(sg), _f64ptr(sgd), _f64ptr(sd)
        lib.cs_bn_backward_sums(f32ptr(gs), f32ptr(xs), b - a, c, length, f32ptr(mean32), *sums_out)
        return sg, sgd, sd

    parts = run(n, step, parallel, sums)
    g_mean, gd_mean, e = (np.sum([p[i] for p in parts], axis=0) / count for i in range(3))
    inv = np.asarray(invstd, dtype=np.float64)
    gxhat_mean = (gd_mean - e * g_mean) * inv
    gx = None
    if need_input:
        scale = inv if weight is None else inv * weight
        k = scale * inv * gxhat_mean
        s32, k32, b32 = _vec(scale, c), _vec(k, c), _vec(scale * g_mean - e * k, c)
        dx = np.empty_like(g3)

        def grad(a: int, b: int) -> None:
            lib.cs_bn_backward_input(
                f32ptr(g3[a:b]), f32ptr(x3[a:b]), f32ptr(dx[a:b]), b - a, c, length,
                f32ptr(mean32), f32ptr(s32), f32ptr(k32), f32ptr(b32),
            )  # fmt: skip

        run(n, step, parallel, grad)
        gx = dx.reshape(g.shape)
    f32 = np.float32
    return gx, (gxhat_mean * count).astype(f32), (g_mean * count).astype(f32)


def _affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, relu: bool) -> np.ndarray:
    lib = _lib()
    x3 = _rows(x)
    n, c, length = x3.shape
    zero, s32, t32 = np.zeros(c, dtype=np.float32), _vec(scale, c), _vec(shift, c)
    out = np.empty_like(x3)
    fn = lib.cs_bn_apply_relu if relu else lib.cs_bn_apply

    def body(a: int, b: int) -> None:
        xs, os_ = x3[a:b], out[a:b]
        fn(f32ptr(xs), f32ptr(os_), b - a, c, length, f32ptr(zero), f32ptr(s32), f32ptr(t32))

    run(n, *_chunks(x3), body)
    return out.reshape(x.shape)


def channel_affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.batchnorm.channel_affine` (same contract).

    Raises:
        Unsupported: not float32, or the library is not loaded.
    """
    return _affine(x, scale, shift, False)


def channel_affine_relu(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """See :func:`convscope.kernels.batchnorm.channel_affine_relu`: equal to ``max(channel_affine(x,
    scale, shift), 0)`` of this backend, bit for bit, in one pass.

    Raises:
        Unsupported: not float32, or the library is not loaded.
    """
    return _affine(x, scale, shift, True)


def channel_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """See :func:`convscope.kernels.batchnorm.channel_sums` (same contract; ``b`` must be None).

    Raises:
        Unsupported: ``b`` given, not float32, or the library is not loaded.
    """
    if b is not None:
        raise Unsupported("native channel_sums covers the plain sum only")
    lib = _lib()
    a3 = _rows(a)
    n, c, length = a3.shape

    def body(i: int, j: int) -> np.ndarray:
        s = np.zeros(c)
        lib.cs_channel_sums(f32ptr(a3[i:j]), j - i, c, length, _f64ptr(s))
        return s

    parts = run(n, *_chunks(a3), body)
    return (np.sum(parts, axis=0) if parts else np.zeros(c)).astype(a.dtype)
