"""Pooling kernels: max, average and adaptive pooling, forward and backward.

They compute exactly what :mod:`convscope.kernels.reference.pool` computes, one output
position at a time; read that first.

Pure NumPy, arrays in and arrays out; inputs are validated by the caller.
Every output size comes from :mod:`convscope.kernels.geometry`.

Semantics follow PyTorch's CPU kernels exactly:

* max pooling scans a window row by row and keeps the first maximum (ties go
  to the first index in scan order); a NaN is always taken, and of several
  NaNs the last one in scan order wins. Padding never wins; a window whose
  inputs are all ``-inf`` reports its first in-bounds tap. Indices are flat
  ``h*W + w`` positions in the input plane, as ``return_indices=True`` gives.
* average pooling divides by the window clipped to input+padding
  (``count_include_pad=True``) or clipped to the input (``False``), or by
  ``divisor_override``.

How it is fast: window taps are strided views of ``x`` (fast path: no
padding or ceil-mode overhang, e.g. 2x2/2) or of a ``-inf``/zero canvas;
the same code serves both, so values and indices are identical. The max is
an elementwise ``np.maximum`` over the taps (reshape-and-reduce is ~30x
slower); the argmax is "number of taps before the first tap equal to the
max", counted with boolean ops, then turned into flat indices with
small-int arithmetic. A contiguous copy of the taps measured
faster alone but lost 1.1-4x in place to page faults on the big temporary.
The max backward is one 1-D ``np.add.at``: in NumPy 2 as fast as a plain
scatter and 2-3x faster than ``np.bincount`` (measured here).
"""

from __future__ import annotations

import numpy as np

from .geometry import ConvGeometry, adaptive_window, effective_kernel
from .window import pad2d, window_view


def _padded(x, pads, extent, fill):
    """Embed ``x`` in a ``fill`` canvas: ``pads`` before, enough after to reach ``extent``.

    Shape: x (N, C, H, W) -> (N, C, max(extent_h, ph+H), max(extent_w, pw+W)).
    """
    (ph, pw), (eh, ew) = pads, extent
    H, W = x.shape[2:]
    return pad2d(x, ((ph, max(eh - ph - H, 0)), (pw, max(ew - pw - W, 0))), fill)


def _tap_slices(kernel, stride, dilation, out_hw):
    """Basic-slice index of every tap, row-major, for writable strided views."""
    (KH, KW), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
    return [
        (
            slice(None),
            slice(None),
            slice(i * dh, i * dh + (Ho - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (Wo - 1) * sw + 1, sw),
        )
        for i in range(KH)
        for j in range(KW)
    ]


def _max(taps):
    """Elementwise maximum over equally shaped ``taps`` (NaN propagates), in a new array."""
    out = np.array(taps[0], copy=True) if len(taps) == 1 else np.maximum(taps[0], taps[1])
    for t in taps[2:]:
        np.maximum(out, t, out=out)
    return out


def _first_max(taps):
    """Elementwise max over ``taps`` and the position of PyTorch's argmax.

    Args:
        taps (sequence of ndarray): equally shaped arrays in scan order.

    Returns:
        (out, k): the maximum (NaN if any tap is NaN) and, per element, the
        tap number PyTorch selects: the first tap equal to the maximum, or
        the last NaN tap where the maximum is NaN. ``k`` is uint8/uint16.
    """
    K = len(taps)
    out = _max(taps)
    k = np.zeros(out.shape, np.uint8 if K < 256 else np.uint16)
    if K > 1:
        missing = np.not_equal(taps[0], out)  # still no tap equal to the max
        k += missing
        for t in taps[1:-1]:
            missing &= np.not_equal(t, out)
            k += missing
    nan = np.isnan(out)
    if nan.any():  # rare: redo the NaN positions with PyTorch's "last NaN" rule
        for i, t in enumerate(taps):
            k[np.isnan(t)] = i
    return out, k


def _first_valid(start, dil, n):
    """First in-bounds tap ``start + m*dil`` (m >= 0) of each window, clipped to n-1."""
    first = np.where(start < 0, start + (-start + dil - 1) // dil * dil, start)
    return np.minimum(first, n - 1)


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode, need_indices=True):
    """2-D max pooling with PyTorch's indices.

    Args:
        x (ndarray): input, float dtype (kept).
        kernel (tuple[int, int]): (KH, KW).
        stride (tuple[int, int]): (sh, sw).
        padding (((int, int), (int, int))): ((top, bottom), (left, right)) of implicit
            ``-inf``, symmetric (top == bottom, left == right) as in PyTorch.
        dilation (tuple[int, int]): (dh, dw).
        ceil_mode (bool): round the output size up (PyTorch's rule).
        need_indices (bool, default True): False skips the argmax bookkeeping (2.8-4x the
            cost of the maximum itself) when nothing needs it: inference.

    Shape:
        x (N, C, H, W) -> out, indices (N, C, H_out, W_out) with
        ``H_out = floor((H + 2*ph - dh*(KH-1) - 1) / sh) + 1`` (ceil in
        ceil_mode, dropping a last window that starts in the right padding);
        likewise W_out.

    Returns:
        (out, indices): max values (x.dtype) and int64 flat ``h*W + w``
        positions of the selected inputs in their (H, W) plane (None without need_indices).
    """
    geom = ConvGeometry.conv(x.shape[2:], kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    (KH, KW), (sh, sw), ((ph, _), (pw, _)), (dh, dw) = geom.kernel, geom.stride, geom.padding, geom.dilation
    N, C, H, W = x.shape
    Ho, Wo = geom.out_size
    extent = ((Ho - 1) * sh + effective_kernel(KH, dh), (Wo - 1) * sw + effective_kernel(KW, dw))
    xp = _padded(x, (ph, pw), extent, -np.inf)
    view = window_view(xp, kernel, stride, dilation)[..., :Ho, :Wo]  # (N, C, KH, KW, Ho, Wo)
    taps = [view[:, :, i, j] for i in range(KH) for j in range(KW)]
    if not need_indices:
        return _max(taps), None
    out, k = _first_max(taps)  # (N, C, Ho, Wo)
    hs = np.arange(Ho) * sh - ph  # window origins, may be negative (in the padding)
    ws = np.arange(Wo) * sw - pw
    # tap k = i*KW + j sits at (i*dh)*W + j*dw from the window origin; small-int
    # arithmetic then one int64 pass beats a table lookup (~1.5x, fewer
    # temporaries), and row counting beats np.divmod (~10x on uint8)
    i = np.zeros_like(k)
    for row in range(1, KH):
        i += k >= row * KW
    j = k - i * k.dtype.type(KW)
    indices = np.multiply(i, dh * W, dtype=np.int64)
    indices += j if dw == 1 else np.multiply(j, dw, dtype=np.int64)
    indices += hs[:, None] * W + ws  # (Ho, Wo) broadcast over N, C
    if xp is not x:
        # a window whose in-bounds taps are all -inf may have matched a padding tap
        neg = out == -np.inf
        if neg.any():
            first = _first_valid(hs, dh, H)[:, None] * W + _first_valid(ws, dw, W)  # (Ho, Wo)
            indices = np.where(neg, first, indices)
    return out, indices


def max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of max pooling: scatter-add ``grad_out`` into the argmax positions.

    Args:
        grad_out (ndarray): upstream gradient.
        indices (ndarray): int64 flat ``h*W + w`` indices from the forward pass.
        input_shape (tuple): (N, C, H, W) of the forward input.

    Shape:
        grad_out, indices (N, C, H_out, W_out) -> grad_input (N, C, H, W).

    Returns:
        ndarray: grad_input, dtype of grad_out; an input picked by several
        (overlapping) windows receives the sum of their gradients, added in
        output order like PyTorch.
    """
    N, C, H, W = input_shape
    plane = H * W
    planes = np.arange(N * C, dtype=np.int64)[:, None] * plane  # (N*C, 1) plane offsets
    flat = (indices.reshape(N * C, -1) + planes).ravel()  # (N, C, Ho, Wo) -> (N*C*Ho*Wo,)
    grad = np.zeros(N * C * plane, grad_out.dtype)
    # 1-D np.add.at with intp indices takes NumPy 2's fast path: as fast as a
    # plain scatter here and 2-3x faster than np.bincount (float64 + cast)
    np.add.at(grad, flat, grad_out.reshape(-1))  # grad_out (N, C, Ho, Wo) -> (N*C*Ho*Wo,)
    return grad.reshape(N, C, H, W)  # (N*C*H*W,) -> (N, C, H, W)


def _avg_divisor(n, k, s, p, n_out, count_include_pad):
    """Per-axis divisor of PyTorch's avg_pool: window clipped to input+pad, or to input."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, n) - np.maximum(start, 0)


def _avg_setup(input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, dtype):
    geom = ConvGeometry.conv(input_shape[2:], kernel, stride, padding, ceil_mode=ceil_mode)
    (KH, KW), (sh, sw), ((ph, _), (pw, _)) = geom.kernel, geom.stride, geom.padding
    N, C, H, W = input_shape
    Ho, Wo = geom.out_size
    if divisor_override:
        div = np.full((Ho, Wo), divisor_override, dtype)
    else:
        dh = _avg_divisor(H, KH, sh, ph, Ho, count_include_pad)
        dw = _avg_divisor(W, KW, sw, pw, Wo, count_include_pad)
        # a window with no input at all sums to 0; PyTorch outputs 0 there
        div = np.maximum(dh[:, None] * dw, 1).astype(dtype)  # (Ho, Wo)
    extent = ((Ho - 1) * sh + KH, (Wo - 1) * sw + KW)
    return (Ho, Wo), extent, div


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """2-D average pooling with PyTorch's divisor rules.

    Args:
        x (ndarray): input, float dtype (kept).
        kernel, stride (tuple[int, int]): (KH, KW), (sh, sw).
        padding (((int, int), (int, int))): ((top, bottom), (left, right)) zeros, symmetric.
        ceil_mode (bool): round the output size up.
        count_include_pad (bool): divide by the window clipped to input+padding
            (True) or to the input only (False).
        divisor_override (int or None): fixed divisor when given.

    Shape:
        x (N, C, H, W) -> (N, C, H_out, W_out),
        ``H_out = floor((H + 2*ph - KH) / sh) + 1`` (ceil in ceil_mode).

    Returns:
        ndarray: the window sums (row-major, like PyTorch) divided by the divisor.
    """
    (Ho, Wo), extent, div = _avg_setup(
        x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, x.dtype
    )
    xp = _padded(x, (padding[0][0], padding[1][0]), extent, 0)
    slices = _tap_slices(kernel, stride, (1, 1), (Ho, Wo))
    out = np.array(xp[slices[0]], copy=True)  # (N, C, Ho, Wo)
    for sl in slices[1:]:
        out += xp[sl]
    out /= div
    return out


def avg_pool2d_backward(
    grad_out, input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None
):
    """Gradient of :func:`avg_pool2d_forward`: each window spreads grad/divisor.

    Args:
        grad_out (ndarray): upstream gradient.
        input_shape (tuple): (N, C, H, W) of the forward input.
        kernel, stride, padding, ceil_mode, count_include_pad, divisor_override:
            as given to the forward.

    Shape:
        grad_out (N, C, H_out, W_out) -> grad_input (N, C, H, W);
        overlapping windows accumulate.

    Returns:
        ndarray: grad_input, dtype of grad_out.
    """
    (Ho, Wo), extent, div = _avg_setup(
        input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, grad_out.dtype
    )
    N, C, H, W = input_shape
    (ph, _), (pw, _) = padding
    share = grad_out / div
    gp = np.zeros((N, C, max(extent[0], ph + H), max(extent[1], pw + W)), grad_out.dtype)
    for sl in _tap_slices(kernel, stride, (1, 1), (Ho, Wo)):
        gp[sl] += share
    return np.ascontiguousarray(gp[:, :, ph : ph + H, pw : pw + W])


def _adaptive_bounds(n, n_out):
    """Start and length of PyTorch's adaptive windows along one axis."""
    bounds = np.array([adaptive_window(o, n, n_out) for o in range(n_out)]).reshape(n_out, 2)  # (n_out, 2)
    return bounds[:, 0], bounds[:, 1] - bounds[:, 0]


def _window_sum(a, axis, start, length):
    """Sum ``a`` over windows ``[start[o], start[o] + length[o])`` along ``axis``.

    Masked adds, not a weight matrix: a NaN or inf must only reach the windows
    that contain it (0 * inf would leak NaN into the others).

    Shape: a (..., n, ...) -> (..., len(start), ...) along ``axis`` (-1 or -2).
    """
    n_out, kmax = len(start), int(length.max())
    uniform = np.array_equal(start, np.arange(n_out) * kmax) and (length == kmax).all()
    acc = None
    for k in range(kmax):
        if uniform:  # tiled windows: a strided slice per offset
            sl = slice(k, k + (n_out - 1) * kmax + 1, kmax)
            v = a[..., sl] if axis == -1 else a[..., sl, :]
        else:
            v = a.take(np.minimum(start + k, a.shape[axis] - 1), axis=axis)
            valid = k < length
            if not valid.all():
                v = np.where(valid if axis == -1 else valid[:, None], v, a.dtype.type(0))
        acc = v.copy() if acc is None else np.add(acc, v, out=acc)
    return acc


def _covering_windows(start, length, n):
    """For each input position: the run of output windows containing it (start, length)."""
    first = np.searchsorted(start + length, np.arange(n), side="right")
    stop = np.searchsorted(start, np.arange(n), side="right")
    return first, stop - first


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling (PyTorch's windows ``[floor(o*H/OH), ceil((o+1)*H/OH))``).

    Args:
        x (ndarray): input, float dtype (kept).
        output_size (tuple[int, int]): (H_out, W_out).

    Shape:
        x (N, C, H, W) -> (N, C, H_out, W_out).

    Returns:
        ndarray: window sums divided by the window height, then its width (as
        PyTorch). Global (1x1) pooling is one BLAS matrix-vector product;
        other sizes are separable window sums (strided slices when the
        windows tile the input).
    """
    N, C, H, W = x.shape
    Ho, Wo = output_size
    dt = x.dtype.type
    if Ho == 1 and Wo == 1:
        s = x.reshape(N * C, H * W) @ np.ones(H * W, x.dtype)  # (N*C,)
        s /= dt(H * W)
        return s.reshape(N, C, 1, 1)  # (N*C,) -> (N, C, 1, 1)
    hs, hl = _adaptive_bounds(H, Ho)
    ws, wl = _adaptive_bounds(W, Wo)
    out = _window_sum(_window_sum(x, -1, ws, wl), -2, hs, hl)  # (N, C, Ho, Wo)
    out /= hl[:, None].astype(x.dtype)
    out /= wl.astype(x.dtype)
    return out


def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """Gradient of :func:`adaptive_avg_pool2d_forward`.

    Args:
        grad_out (ndarray): upstream gradient.
        input_shape (tuple): (N, C, H, W) of the forward input.

    Shape:
        grad_out (N, C, H_out, W_out) -> grad_input (N, C, H, W).

    Returns:
        ndarray: each input receives, summed over the windows containing it,
        grad / window height / window width.
    """
    N, C, H, W = input_shape
    Ho, Wo = grad_out.shape[2:]
    dt = grad_out.dtype
    if Ho == 1 and Wo == 1:
        share = grad_out / dt.type(H * W)  # (N, C, 1, 1)
        return np.broadcast_to(share, (N, C, H, W)).copy()
    hs, hl = _adaptive_bounds(H, Ho)
    ws, wl = _adaptive_bounds(W, Wo)
    share = grad_out / hl[:, None].astype(dt)
    share /= wl.astype(dt)
    if H % Ho == 0 and W % Wo == 0:
        kh, kw = H // Ho, W // Wo
        grad = np.broadcast_to(share[:, :, :, None, :, None], (N, C, Ho, kh, Wo, kw))
        return grad.reshape(N, C, H, W)  # (N, C, Ho, kh, Wo, kw) -> (N, C, H, W), copies
    grad = _window_sum(share, -1, *_covering_windows(ws, wl, W))  # (N, C, Ho, W)
    return _window_sum(grad, -2, *_covering_windows(hs, hl, H))  # (N, C, H, W)


def adaptive_max_pool2d_forward(x, output_size):
    """Adaptive max pooling with PyTorch's indices (same conventions as max_pool2d).

    Args:
        x (ndarray): input, float dtype (kept).
        output_size (tuple[int, int]): (H_out, W_out).

    Shape:
        x (N, C, H, W) -> out, indices (N, C, H_out, W_out).

    Returns:
        (out, indices): window maxima and int64 flat ``h*W + w`` indices.
    """
    N, C, H, W = x.shape
    Ho, Wo = output_size
    if H % Ho == 0 and W % Wo == 0 and (H // Ho) * (W // Wo) <= 16:
        k = (H // Ho, W // Wo)
        return max_pool2d_forward(x, k, k, ((0, 0), (0, 0)), (1, 1), False)
    hs, hl = _adaptive_bounds(H, Ho)
    ws, wl = _adaptive_bounds(W, Wo)
    KH, KW = int(hl.max()), int(wl.max())
    if Ho == 1 and Wo == 1:
        win = x.reshape(N * C, H * W)  # (N*C, H*W), taps last
    else:
        # gather every window, taps last; taps past a short window repeat its last input
        rows = np.minimum(hs[:, None] + np.arange(KH), hs[:, None] + hl[:, None] - 1)  # (Ho, KH)
        cols = np.minimum(ws[:, None] + np.arange(KW), ws[:, None] + wl[:, None] - 1)  # (Wo, KW)
        win = x[:, :, rows[:, :, None, None], cols[None, None, :, :]]  # (N, C, Ho, KH, Wo, KW)
        pad_h = (np.arange(KH) >= hl[:, None])[:, :, None, None]  # (Ho, KH, 1, 1)
        pad = pad_h | (np.arange(KW) >= wl[:, None])  # (Ho, KH, Wo, KW)
        win = np.where(pad, -np.inf, win).astype(x.dtype, copy=False)  # -inf never wins
        win = win.transpose(0, 1, 2, 4, 3, 5)  # (N, C, Ho, Wo, KH, KW)
        win = win.reshape(N * C * Ho * Wo, KH * KW)  # (N*C*Ho*Wo, KH*KW), copies
    k = np.argmax(win, axis=1)  # first maximum in scan order
    out = np.take_along_axis(win, k[:, None], axis=1)[:, 0]
    nan = np.isnan(out)
    if nan.any():  # PyTorch keeps the last NaN of the window
        last = win.shape[1] - 1 - np.argmax(np.isnan(win[nan])[:, ::-1], axis=1)
        k[nan] = last
    k = k.reshape(N, C, Ho, Wo)  # (N*C*Ho*Wo,) -> (N, C, Ho, Wo)
    indices = (hs[:, None] + k // KW) * W + (ws + k % KW)
    return out.reshape(N, C, Ho, Wo), indices.astype(np.int64, copy=False)  # (N*C*Ho*Wo,) -> (N, C, Ho, Wo)


def adaptive_max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of :func:`adaptive_max_pool2d_forward` (scatter-add via indices).

    Args:
        grad_out (ndarray): upstream gradient.
        indices (ndarray): int64 indices from the forward.
        input_shape (tuple): (N, C, H, W) of the forward input.

    Shape:
        grad_out, indices (N, C, H_out, W_out) -> grad_input (N, C, H, W).

    Returns:
        ndarray: grad_input (windows overlap unless H % H_out == W % W_out == 0;
        overlaps accumulate).
    """
    return max_pool2d_backward(grad_out, indices, input_shape)
