"""Max and average pooling on the native backend: same functions and contracts as
:mod:`convscope.kernels.pool`, which computes exactly the same (bit for bit); read that first.

Each call runs ``pool.c`` over (image, channel) planes; large arrays run in chunks of planes
on the native thread pool (:mod:`._passes`). Covered: float32 (N, C, H, W) inputs with
symmetric padding; anything else raises :class:`Unsupported` (the NumPy kernel then runs).
The adaptive pools stay NumPy.
"""

from __future__ import annotations

import numpy as np

from ..geometry import ConvGeometry
from ..pool import _avg_setup
from ._lib import f32ptr, required_library
from ._passes import plan, run_pass
from ._unsupported import Unsupported

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]


def _check(a: np.ndarray, what: str) -> None:
    if a.dtype != np.float32:
        raise Unsupported(f"native pooling covers float32 only, got {what} of {a.dtype}")
    if a.ndim != 4:
        raise Unsupported(f"native pooling expects (N, C, H, W) arrays, got {what} of {a.ndim} dims")


def _pads(padding) -> tuple[int, int]:
    (top, bottom), (left, right) = padding
    if top != bottom or left != right:
        raise Unsupported("native pooling covers symmetric padding only")
    return int(top), int(left)


def _geometry(shape, kernel, stride, pads: tuple[int, int], dilation) -> np.ndarray:
    """The 10 ints pool.c reads: H, W, KH, KW, sh, sw, ph, pw, dh, dw."""
    _, _, h, w = shape
    return np.array([h, w, *kernel, *stride, *pads, *dilation], dtype=np.int32)


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode, need_indices=True):
    """See :func:`convscope.kernels.pool.max_pool2d_forward` (same contract).

    Raises:
        Unsupported: not a float32 (N, C, H, W) array, asymmetric padding, or no library.
    """
    lib = required_library()
    _check(x, "x")
    pads = _pads(padding)
    geom = ConvGeometry.conv(x.shape[2:], kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    g = _geometry(x.shape, geom.kernel, geom.stride, pads, geom.dilation)
    n, c, h, w = x.shape
    ho, wo = geom.out_size
    planes = n * c
    x3 = np.ascontiguousarray(x).reshape(planes, h * w)
    out = np.empty((n, c, ho, wo), np.float32)
    o3 = out.reshape(planes, ho * wo)
    idx = np.empty((n, c, ho, wo), np.int64) if need_indices else None
    i3 = None if idx is None else idx.reshape(planes, ho * wo)

    run_pass(
        lib, "max_pool_forward", planes, *plan(planes, x3.nbytes),
        a=f32ptr(x3), out=f32ptr(o3), idx=None if i3 is None else i3.ctypes.data,
        l=h * w, l_out=ho * wo, g=g.ctypes.data, hout=ho, wout=wo,
    )  # fmt: skip
    return out, idx


def max_pool2d_backward(grad_out, indices, input_shape):
    """See :func:`convscope.kernels.pool.max_pool2d_backward` (same contract).

    Raises:
        Unsupported: not float32 (N, C, H_out, W_out) gradients, or no library.
    """
    lib = required_library()
    _check(grad_out, "grad_out")
    n, c, h, w = input_shape
    planes, size_in = n * c, h * w
    size_out = grad_out.shape[2] * grad_out.shape[3]
    g3 = np.ascontiguousarray(grad_out).reshape(planes, size_out)
    i3 = np.ascontiguousarray(indices, dtype=np.int64).reshape(planes, size_out)
    dx = np.empty((n, c, h, w), np.float32)
    d3 = dx.reshape(planes, size_in)

    run_pass(
        lib, "max_pool_backward", planes, *plan(planes, d3.nbytes),
        a=f32ptr(g3), idx=i3.ctypes.data, out=f32ptr(d3), l=size_in, l_out=size_out,
    )  # fmt: skip
    return dx


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """See :func:`convscope.kernels.pool.avg_pool2d_forward` (same contract).

    Raises:
        Unsupported: not a float32 (N, C, H, W) array, asymmetric padding, or no library.
    """
    lib = required_library()
    _check(x, "x")
    pads = _pads(padding)
    (ho, wo), _, div = _avg_setup(
        x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, x.dtype
    )
    div32 = np.ascontiguousarray(np.broadcast_to(div, (ho, wo)), dtype=np.float32)
    g = _geometry(x.shape, kernel, stride, pads, (1, 1))
    n, c, h, w = x.shape
    planes = n * c
    x3 = np.ascontiguousarray(x).reshape(planes, h * w)
    out = np.empty((n, c, ho, wo), np.float32)
    o3 = out.reshape(planes, ho * wo)

    run_pass(
        lib, "avg_pool_forward", planes, *plan(planes, x3.nbytes),
        a=f32ptr(x3), out=f32ptr(o3), t=f32ptr(div32),
        l=h * w, l_out=ho * wo, g=g.ctypes.data, hout=ho, wout=wo,
    )  # fmt: skip
    return out


def avg_pool2d_backward(
    grad_out, input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None
):
    """See :func:`convscope.kernels.pool.avg_pool2d_backward` (same contract).

    Raises:
        Unsupported: not float32 (N, C, H_out, W_out) gradients, asymmetric padding, or no library.
    """
    lib = required_library()
    _check(grad_out, "grad_out")
    pads = _pads(padding)
    (ho, wo), _, div = _avg_setup(
        input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, grad_out.dtype
    )
    div32 = np.ascontiguousarray(np.broadcast_to(div, (ho, wo)), dtype=np.float32)
    g = _geometry(input_shape, kernel, stride, pads, (1, 1))
    n, c, h, w = input_shape
    planes = n * c
    g3 = np.ascontiguousarray(grad_out).reshape(planes, ho * wo)
    dx = np.empty((n, c, h, w), np.float32)
    d3 = dx.reshape(planes, h * w)

    run_pass(
        lib, "avg_pool_backward", planes, *plan(planes, d3.nbytes),
        a=f32ptr(g3), t=f32ptr(div32), out=f32ptr(d3),
        l=h * w, l_out=ho * wo, g=g.ctypes.data, hout=ho, wout=wo,
    )  # fmt: skip
    return dx
