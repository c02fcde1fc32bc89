"""Batch normalisation as the lecture writes it: read this first, then
:mod:`convscope.kernels.batchnorm`.

Per channel c, over the batch (and the spatial positions):

    mean = average of x;  var = average of (x - mean)^2  (biased);  xhat = (x - mean) / sqrt(var + eps)
    out = weight * xhat + bias

Backward (m values per channel, g = dL/dout):

    dbias = sum g;  dweight = sum g * xhat
    dx = weight / sqrt(var + eps) * (g - mean(g) - xhat * mean(g * xhat))

The sums here run in float64 and the results are cast back to x's dtype (the NumPy kernels
reach float32 accuracy with shifted sums instead). ``channel_affine`` and ``channel_sums``
(evaluation mode) have no reference version: the NumPy ones run.
"""

from __future__ import annotations

import numpy as np


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1: (0,) for (N, C), (0, 2, 3) for (N, C, H, W)."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Shape: (C,) -> (1, C, 1, ...) to broadcast against an ndim-D input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_train_forward(x: np.ndarray, weight, bias, eps: float, relu: bool = False):
    """Normalise with the batch's own statistics; then, if ``relu``, ``max(out, 0)`` (the
    following ReLU, which the fast backends fuse into the same pass).

    Shape:
        x: (N, C) or (N, C, H, W); weight, bias: (C,) or None -> out like x; mean, var, invstd (C,).

    Returns:
        (out, mean, var, invstd) in x's dtype.
    """
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=_axes(x))
    centred = x64 - _per_channel(mean, x.ndim)
    var = (centred * centred).mean(axis=_axes(x))
    invstd = 1.0 / np.sqrt(var + eps)
    out = centred * _per_channel(invstd, x.ndim)  # xhat
    if weight is not None:
        out = out * _per_channel(weight, x.ndim)
    if bias is not None:
        out = out + _per_channel(bias, x.ndim)
    dt = x.dtype
    out = out.astype(dt)
    if relu:
        out = np.maximum(out, 0)
    return out, mean.astype(dt), var.astype(dt), invstd.astype(dt)


def batch_norm_train_backward(
    g: np.ndarray, x: np.ndarray, mean, invstd, weight, need_input: bool = True, relu_out=None
):
    """Gradients of :func:`batch_norm_train_forward`; with ``relu_out`` (the forward's output
    when it ran with ``relu``) through the ReLU first: g where ``relu_out > 0``, else 0.

    Shape:
        g, x: like the forward input; mean, invstd, weight: (C,) -> dx like x, dweight, dbias (C,).

    Returns:
        (grad_input or None, grad_weight, grad_bias) in g's dtype.
    """
    if relu_out is not None:
        g = g * (relu_out > 0)
    axes, nd = _axes(x), x.ndim
    g64 = g.astype(np.float64)
    inv = invstd.astype(np.float64)
    xhat = (x.astype(np.float64) - _per_channel(mean.astype(np.float64), nd)) * _per_channel(inv, nd)
    dbias = g64.sum(axis=axes)
    dweight = (g64 * xhat).sum(axis=axes)
    dx = None
    if need_input:
        count = x.size // x.shape[1]
        scale = inv if weight is None else inv * weight.astype(np.float64)
        g_mean = _per_channel(dbias / count, nd)
        gxhat_mean = _per_channel(dweight / count, nd)
        dx = (_per_channel(scale, nd) * (g64 - g_mean - xhat * gxhat_mean)).astype(g.dtype)
    return dx, dweight.astype(g.dtype), dbias.astype(g.dtype)
