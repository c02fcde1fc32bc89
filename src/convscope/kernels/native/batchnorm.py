"""Batch normalisation on the native backend: same functions and contracts as
:mod:`convscope.kernels.batchnorm`, which computes exactly the same; read that first.

Each pass is one C loop over (image, channel) rows (``batchnorm.c``); statistics are taken
of ``d = x - m`` with ``m`` near the mean and summed in double. Large arrays run in chunks of
images on the native thread pool (:mod:`._passes`). Covered: float32; anything else raises
:class:`Unsupported`.
"""

from __future__ import annotations

import numpy as np

from ._lib import f32ptr, required_library
from ._lib import f64ptr as _f64ptr
from ._passes import partial_sums, plan, run_pass
from ._unsupported import Unsupported

__all__ = [
    "batch_norm_train_forward",
    "batch_norm_train_backward",
    "channel_affine",
    "channel_affine_relu",
    "channel_sums",
]

#: Images whose mean is the shift m of the statistics (near the batch mean; exactness does
#: not depend on it, only how little cancels).
SHIFT_IMAGES = 8


def _rows(a: np.ndarray) -> np.ndarray:
    """float32 (N, C, L) contiguous view/copy of a (N, C, *) array."""
    if a.dtype != np.float32:
        raise Unsupported(f"native batch norm covers float32 only, got {a.dtype}")
    if a.ndim < 2:
        raise Unsupported("native batch norm expects (N, C, *) arrays")
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _vec(v, c: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float32), (c,)))


def _sums(lib, a3: np.ndarray, count: int) -> np.ndarray:
    """Per-channel float64 sums of a3's first ``count`` images."""
    _, c, length = a3.shape
    s = np.zeros(c)
    lib.cs_channel_sums(f32ptr(a3), count, c, length, _f64ptr(s))
    return s


def batch_norm_train_forward(x: np.ndarray, weight, bias, eps: float, relu: bool = False):
    """See :func:`convscope.kernels.batchnorm.batch_norm_train_forward` (same contract; with
    ``relu`` the ReLU runs in the normalising pass).

    Raises:
        Unsupported: not float32, or the library is not loaded.
    """
    lib = required_library()
    x3 = _rows(x)
    n, c, length = x3.shape
    count = n * length
    first = min(n, SHIFT_IMAGES)
    m = (_sums(lib, x3, first) / max(first * length, 1)).astype(np.float32)
    step, threads = plan(n, x3.nbytes)
    p1, p2 = partial_sums(n, step, c), partial_sums(n, step, c)
    rows = {"c": c, "l": length}
    sums = {"p1": _f64ptr(p1), "p2": _f64ptr(p2)}
    run_pass(lib, "bn_stats", n, step, threads, a=f32ptr(x3), m=f32ptr(m), **sums, **rows)
    e = p1.sum(axis=0) / count  # the chunks' sums, added in chunk order
    sq = p2.sum(axis=0) / count
    var = np.maximum(sq - e * e, 0.0)
    invstd = 1 / np.sqrt(var + eps)
    a_ = invstd if weight is None else invstd * weight
    shift = -e * a_ if bias is None else bias - e * a_
    a32, shift32 = _vec(a_, c), _vec(shift, c)
    out = np.empty_like(x3)
    run_pass(
        lib, "bn_apply_relu" if relu else "bn_apply", n, step, threads,
        a=f32ptr(x3), out=f32ptr(out), m=f32ptr(m), s=f32ptr(a32), t=f32ptr(shift32), **rows,
    )  # fmt: skip
    f32 = np.float32
    return out.reshape(x.shape), (m + e).astype(f32), var.astype(f32), invstd.astype(f32)


def batch_norm_train_backward(
    g: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight,
    need_input: bool = True,
    relu_out: np.ndarray | None = None,
):
    """See :func:`convscope.kernels.batchnorm.batch_norm_train_backward` (same contract; the
    ReLU's mask is applied to g inside both passes, with no masked copy of g).

    Raises:
        Unsupported: not float32, or the library is not loaded.
    """
    lib = required_library()
    g3, x3 = _rows(g), _rows(x)
    y3 = None if relu_out is None else _rows(relu_out)
    if y3 is not None and y3.shape != g3.shape:
        raise Unsupported("relu_out must have g's shape")
    n, c, length = g3.shape
    count = n * length
    mean32 = _vec(mean, c)
    step, threads = plan(n, g3.nbytes)
    parts = [partial_sums(n, step, c) for _ in range(3)]
    arrays = {"a": f32ptr(g3), "b": f32ptr(x3), "y": f32ptr(y3), "m": f32ptr(mean32), "c": c, "l": length}
    sums_out = {"p1": _f64ptr(parts[0]), "p2": _f64ptr(parts[1]), "p3": _f64ptr(parts[2])}
    run_pass(lib, "bn_backward_sums", n, step, threads, **arrays, **sums_out)
    g_mean, gd_mean, e = (part.sum(axis=0) / count for part in parts)
    inv = np.asarray(invstd, dtype=np.float64)
    gxhat_mean = (gd_mean - e * g_mean) * inv
    gx = None
    if need_input:
        scale = inv if weight is None else inv * weight
        k = scale * inv * gxhat_mean
        s32, k32, b32 = _vec(scale, c), _vec(k, c), _vec(scale * g_mean - e * k, c)
        dx = np.empty_like(g3)
        vectors = {"s": f32ptr(s32), "k": f32ptr(k32), "t": f32ptr(b32)}
        run_pass(lib, "bn_backward_input", n, step, threads, out=f32ptr(dx), **arrays, **vectors)
        gx = dx.reshape(g.shape)
    f32 = np.float32
    return gx, (gxhat_mean * count).astype(f32), (g_mean * count).astype(f32)


def _affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, relu: bool) -> np.ndarray:
    lib = required_library()
    x3 = _rows(x)
    n, c, length = x3.shape
    zero, s32, t32 = np.zeros(c, dtype=np.float32), _vec(scale, c), _vec(shift, c)
    out = np.empty_like(x3)
    run_pass(
        lib, "bn_apply_relu" if relu else "bn_apply", n, *plan(n, x3.nbytes),
        a=f32ptr(x3), out=f32ptr(out), m=f32ptr(zero), s=f32ptr(s32), t=f32ptr(t32), c=c, l=length,
    )  # fmt: skip
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
    lib = required_library()
    a3 = _rows(a)
    n, c, length = a3.shape

    step, threads = plan(n, a3.nbytes)
    parts = partial_sums(n, step, c)
    run_pass(lib, "channel_sums", n, step, threads, a=f32ptr(a3), p1=_f64ptr(parts), c=c, l=length)
    return parts.sum(axis=0).astype(a.dtype)
