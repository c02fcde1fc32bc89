"""Convolution as the lecture writes it: read this first, then :mod:`convscope.kernels.conv`.

A 2-D convolution layer (a cross-correlation, as in every deep-learning library) slides each
filter over the zero-padded input. For output position (i, j) of filter ``co``::

    out[n, co, i, j] = bias[co] + sum over c, kh, kw of
                       weight[co, c, kh, kw] * xp[n, c, i*sh + kh*dh, j*sw + kw*dw]

that is, "the window times the filter, summed over the window and the channels, plus the bias"
(:func:`conv2d_loops` computes exactly this, one output number at a time). With ``groups`` the
channels split into groups and filter ``co`` only sees its group's input channels.

The fast way to compute the same numbers is **im2col**: copy every window into one column of
a matrix (:func:`im2col`), then all filters times all windows is one matrix product
``W (C_out, C_in*KH*KW) @ cols (C_in*KH*KW, N*H_out*W_out)``. The gradients are matrix
products too: ``dW = dout @ cols^T`` and ``dcols = W^T @ dout``, and :func:`col2im` adds each
column of ``dcols`` back onto the window it came from (overlapping windows add up). A
transposed convolution is the input gradient of a convolution, so its forward is col2im and
its backward im2col.

Conv1d is this with a 1xK kernel over a height-1 image. Everything here works in the input's
dtype and has the same signatures and results as the NumPy kernels (it is a backend:
``convscope.backends.use("reference")``); it is slow and meant for reading and testing.
"""

from __future__ import annotations

import numpy as np

from ..conv import ConvSaved
from ..geometry import ConvGeometry, Pads

Pair = tuple[int, int]


def zero_pad(x: np.ndarray, padding: Pads) -> np.ndarray:
    """x inside a border of zeros.

    Shape:
        x: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    """
    (pt, pb), (pl, pr) = padding
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=x.dtype)
    xp[:, :, pt : pt + h, pl : pl + w] = x
    return xp


def window(xp: np.ndarray, i: int, j: int, geom: ConvGeometry) -> np.ndarray:
    """The window of padded input that output position (i, j) sees: rows ``i*sh + kh*dh``,
    columns ``j*sw + kw*dw`` for every tap (kh, kw).

    Shape:
        xp: (..., Hp, Wp) -> (..., KH, KW).
    """
    (sh, sw), (dh, dw), (kh, kw) = geom.stride, geom.dilation, geom.kernel
    r0, c0 = i * sh, j * sw
    return xp[..., r0 : r0 + (kh - 1) * dh + 1 : dh, c0 : c0 + (kw - 1) * dw + 1 : dw]


def conv2d_loops(x, weight, bias, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
    """The convolution one output number at a time (the oracle of everything else).

    Shape:
        x: (N, C_in, H, W), weight: (C_out, C_in/groups, KH, KW), bias: (C_out,) or None
        -> (N, C_out, H_out, W_out).
    """
    n, c_in = x.shape[:2]
    c_out, c_g = weight.shape[:2]
    geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    h_out, w_out = geom.out_size
    xp = zero_pad(x, geom.padding)
    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    per_group = c_out // groups
    for b in range(n):
        for co in range(c_out):
            first = (co // per_group) * c_g  # the first input channel of this filter's group
            for i in range(h_out):
                for j in range(w_out):
                    win = window(xp[b, first : first + c_g], i, j, geom)  # (C_in/groups, KH, KW)
                    total = np.sum(win * weight[co])  # over channels and taps
                    out[b, co, i, j] = total + (0 if bias is None else bias[co])
    return out


def im2col(xp: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """Every window of the padded input as one column.

    Shape:
        xp: (N, C, Hp, Wp) -> cols: (C*KH*KW, N*H_out*W_out); row (c, kh, kw), column (n, i, j):
        ``cols[(c, kh, kw), (n, i, j)] = xp[n, c, i*sh + kh*dh, j*sw + kw*dw]``.
    """
    n, c = xp.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (h_out, w_out) = geom.kernel, geom.stride, geom.dilation, geom.out_size
    cols = np.empty((c, kh, kw, n, h_out, w_out), dtype=xp.dtype)
    for p in range(kh):
        for q in range(kw):
            # tap (p, q) of every window: a strided slice of the padded input
            tap = xp[
                :, :, p * dh : p * dh + (h_out - 1) * sh + 1 : sh, q * dw : q * dw + (w_out - 1) * sw + 1 : sw
            ]
            cols[:, p, q] = tap.transpose(1, 0, 2, 3)  # (N, C, H_out, W_out) -> (C, N, H_out, W_out)
    return cols.reshape(c * kh * kw, n * h_out * w_out)  # (C, KH, KW, N, H_out, W_out) -> 2-D


def col2im(cols: np.ndarray, padded_shape: tuple[int, int, int, int], geom: ConvGeometry) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column back onto its window.

    Shape:
        cols: (C*KH*KW, N*H_out*W_out) -> (N, C, Hp, Wp) = padded_shape.
    """
    n, c = padded_shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (h_out, w_out) = geom.kernel, geom.stride, geom.dilation, geom.out_size
    cols6 = cols.reshape(c, kh, kw, n, h_out, w_out)
    xp = np.zeros(padded_shape, dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            rows = slice(p * dh, p * dh + (h_out - 1) * sh + 1, sh)
            columns = slice(q * dw, q * dw + (w_out - 1) * sw + 1, sw)
            xp[:, :, rows, columns] += cols6[:, p, q].transpose(1, 0, 2, 3)  # (C, N, ..) -> (N, C, ..)
    return xp


def _unpad(xp: np.ndarray, padding: Pads, size: Pair) -> np.ndarray:
    """Shape: (N, C, Hp, Wp) -> (N, C, H, W), the padding cut off."""
    (pt, _), (pl, _) = padding
    return np.ascontiguousarray(xp[:, :, pt : pt + size[0], pl : pl + size[1]])


def _per_group(a: np.ndarray, groups: int) -> list[np.ndarray]:
    """Split the channel axis (axis 1) into ``groups`` equal parts."""
    return np.split(a, groups, axis=1)


def _forward(x, weight, bias, geom: ConvGeometry) -> np.ndarray:
    """out = W @ im2col(x) + b, group by group. Shape: as :func:`conv2d_forward`."""
    n = x.shape[0]
    c_out = weight.shape[0]
    h_out, w_out = geom.out_size
    xp = zero_pad(x, geom.padding)
    outs = []
    for xg, wg in zip(_per_group(xp, geom.groups), np.split(weight, geom.groups), strict=True):
        cols = im2col(xg, geom)  # (C_in/G*KH*KW, N*H_out*W_out)
        outs.append(wg.reshape(wg.shape[0], -1) @ cols)  # (C_out/G, N*H_out*W_out)
    out = np.concatenate(outs).reshape(c_out, n, h_out, w_out).transpose(1, 0, 2, 3)  # -> (N, C_out, ..)
    if bias is not None:
        out = out + bias.reshape(-1, 1, 1)
    return np.ascontiguousarray(out, dtype=x.dtype)


def _grads(x, weight, g, geom: ConvGeometry, need_input: bool, need_weight: bool):
    """dx = col2im(W^T @ g) and dW = g @ im2col(x)^T, group by group.

    Shape:
        x: (N, C_in, H, W), weight: (C_out, C_in/G, KH, KW), g: (N, C_out, H_out, W_out)
        -> dx like x (or None), dW like weight (or None).
    """
    xp = zero_pad(x, geom.padding)
    gx_parts, gw_parts = [], []
    for xg, wg, gg in zip(
        _per_group(xp, geom.groups), np.split(weight, geom.groups), _per_group(g, geom.groups), strict=True
    ):
        g_mat = gg.transpose(1, 0, 2, 3).reshape(gg.shape[1], -1)  # (C_out/G, N*H_out*W_out)
        if need_weight:
            gw_parts.append((g_mat @ im2col(xg, geom).T).reshape(wg.shape))
        if need_input:
            dcols = wg.reshape(wg.shape[0], -1).T @ g_mat  # (C_in/G*KH*KW, N*H_out*W_out)
            gx_parts.append(col2im(dcols, xg.shape, geom))
    gx = _unpad(np.concatenate(gx_parts, axis=1), geom.padding, x.shape[2:]) if need_input else None
    gw = np.concatenate(gw_parts).astype(weight.dtype, copy=False) if need_weight else None
    return gx, gw


def conv2d_forward(x, weight, bias, stride: Pair, padding: Pads, dilation: Pair, groups: int):
    """2-D cross-correlation by im2col; same arguments and results as
    :func:`convscope.kernels.conv.conv2d_forward`.

    Shape:
        x: (N, C_in, H, W); weight: (C_out, C_in/groups, KH, KW); bias: (C_out,) or None
        -> out: (N, C_out, H_out, W_out), ``H_out = floor((H + top + bottom - dh*(KH-1) - 1)/sh) + 1``.

    Returns:
        (out, saved): ``saved`` is a :class:`~convscope.kernels.conv.ConvSaved`.
    """
    geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    return _forward(x, weight, bias, geom), ConvSaved(x, weight, bias is not None, geom)


def conv2d_backward(
    grad_out, saved: ConvSaved, need_input: bool = True, need_weight: bool = True, need_bias: bool = True
):
    """Gradients of :func:`conv2d_forward`.

    Shape:
        grad_out: (N, C_out, H_out, W_out) -> grad_input (N, C_in, H, W),
        grad_weight (C_out, C_in/groups, KH, KW), grad_bias (C_out,).

    Returns:
        (grad_input, grad_weight, grad_bias), each None when not needed (or no bias).
    """
    g = np.asarray(grad_out, dtype=saved.x.dtype)
    gx, gw = _grads(saved.x, saved.weight, g, saved.geom, need_input, need_weight)
    gb = g.sum(axis=(0, 2, 3)) if (need_bias and saved.has_bias) else None
    return gx, gw, gb


def conv_transpose2d_forward(
    x, weight, bias, stride: Pair, padding: Pads, output_padding: Pair, dilation: Pair, groups: int
):
    """2-D transposed convolution: the input gradient of the matching conv2d, plus bias.

    Shape:
        x: (N, C_in, H, W); weight: (C_in, C_out/groups, KH, KW); bias: (C_out,) or None
        -> (N, C_out, H_out, W_out), ``H_out = (H - 1)*sh - 2*ph + dh*(KH - 1) + oph + 1``.

    Returns:
        (out, saved): ``saved.geom`` is the geometry of the matching convolution.
    """
    tgeom = ConvGeometry.transpose(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, groups
    )
    geom = tgeom.as_conv()  # the convolution from our output (its input) to x (its output)
    n, c_out = x.shape[0], weight.shape[1] * groups
    out_shape = (n, c_out, *tgeom.out_size)
    out, _ = _grads(np.zeros(out_shape, dtype=x.dtype), weight, x, geom, need_input=True, need_weight=False)
    if bias is not None:
        out = out + bias.reshape(-1, 1, 1).astype(x.dtype)
    return out, ConvSaved(x, weight, bias is not None, geom)


def conv_transpose2d_backward(
    grad_out, saved: ConvSaved, need_input: bool = True, need_weight: bool = True, need_bias: bool = True
):
    """Gradients of :func:`conv_transpose2d_forward`: the matching conv2d applied to
    ``grad_out`` (input gradient) and its weight gradient with roles swapped.

    Shape:
        grad_out: (N, C_out, H_out, W_out) -> grad_input (N, C_in, H, W),
        grad_weight (C_in, C_out/groups, KH, KW), grad_bias (C_out,).
    """
    x, geom = saved.x, saved.geom
    g = np.asarray(grad_out, dtype=x.dtype)
    gx = _forward(g, saved.weight, None, geom) if need_input else None
    gw = _grads(g, saved.weight, x, geom, need_input=False, need_weight=True)[1] if need_weight else None
    gb = g.sum(axis=(0, 2, 3)) if (need_bias and saved.has_bias) else None
    return gx, gw, gb


def conv2d_backward_loops(x, weight, grad_out, stride: Pair, padding: Pads, dilation: Pair, groups: int):
    """Gradients by loops: each output's gradient flows back along its taps.

    Shape:
        as :func:`conv2d_loops`; returns (dx like x, dW like weight, db (C_out,)).
    """
    c_out, c_g = weight.shape[:2]
    geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    xp = zero_pad(x, geom.padding)
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    per_group = c_out // groups
    for b, co, i, j in np.ndindex(*grad_out.shape):
        first = (co // per_group) * c_g
        g = grad_out[b, co, i, j]
        window(gxp[b, first : first + c_g], i, j, geom)[...] += weight[co] * g  # a view: adds in place
        gw[co] += window(xp[b, first : first + c_g], i, j, geom) * g
    return _unpad(gxp, geom.padding, x.shape[2:]), gw, grad_out.sum(axis=(0, 2, 3))


def conv_transpose2d_loops(
    x, weight, bias, stride: Pair, padding: Pads, output_padding: Pair, dilation: Pair, groups: int
):
    """Transposed convolution by loops: every input value stamps its filter onto the output.

    Shape:
        x: (N, C_in, H, W), weight: (C_in, C_out/groups, KH, KW) -> (N, C_out, H_out, W_out).
    """
    n, c_in = x.shape[:2]
    c_og = weight.shape[1]
    tgeom = ConvGeometry.transpose(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, groups
    )
    geom = tgeom.as_conv()
    (pt, pb), (pl, pr) = geom.padding
    full = np.zeros(
        (n, c_og * groups, tgeom.out_size[0] + pt + pb, tgeom.out_size[1] + pl + pr), dtype=x.dtype
    )
    c_ig = c_in // groups
    for b, ci, i, j in np.ndindex(*x.shape):
        first = (ci // c_ig) * c_og
        window(full[b, first : first + c_og], i, j, geom)[...] += x[b, ci, i, j] * weight[ci]
    out = _unpad(full, geom.padding, tgeom.out_size)
    return out if bias is None else out + bias.reshape(-1, 1, 1)
