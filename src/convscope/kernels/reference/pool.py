"""Pooling as the lecture writes it: read this first, then :mod:`convscope.kernels.pool`.

Max pooling keeps the largest value of each window and remembers where it was; its gradient
goes only to that input (the "switch"). Average pooling divides each window's sum by the
window size; its gradient spreads ``grad / size`` over the window. Adaptive pooling picks the
windows from the output size (cell ``i`` of ``n_out`` covers ``[floor(i*n/n_out),
ceil((i+1)*n/n_out))``). Each function loops over output positions; one step handles all
images and channels at once.

PyTorch's rules, which the NumPy kernels follow too: ties go to the first maximum in scan
order (row by row), a NaN always wins (the last NaN of the window), padding never wins (a
window of ``-inf`` inputs reports its first real input), and indices are flat ``h*W + w``
positions in each input plane. Same signatures and results as the NumPy kernels.
"""

from __future__ import annotations

import numpy as np

from ..geometry import ConvGeometry, Pads, adaptive_window

Pair = tuple[int, int]


def _taps(geom: ConvGeometry, i: int, j: int, size: Pair):
    """(h, w) of the window's taps that lie inside the input, in scan order (row by row)."""
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
    (pt, _), (pl, _) = geom.padding
    for p in range(kh):
        for q in range(kw):
            h, w = i * sh - pt + p * dh, j * sw - pl + q * dw
            if 0 <= h < size[0] and 0 <= w < size[1]:
                yield h, w


def _max_over(x: np.ndarray, taps) -> tuple[np.ndarray, np.ndarray]:
    """Maximum over ``taps`` of x's planes and the flat index of the winner (PyTorch's rule).

    Shape:
        x: (N, C, H, W) -> best, where: (N, C).
    """
    width = x.shape[3]
    (h, w), *rest = list(taps)  # the first real input starts the scan
    best = x[:, :, h, w].copy()
    where = np.full(best.shape, h * width + w, dtype=np.int64)
    for h, w in rest:
        v = x[:, :, h, w]
        take = (v > best) | np.isnan(v)
        best = np.where(take, v, best)
        where = np.where(take, h * width + w, where)
    return best, where


def max_pool2d_forward(x, kernel, stride, padding: Pads, dilation, ceil_mode, need_indices=True):
    """2-D max pooling with PyTorch's indices, one output position at a time.

    Shape:
        x: (N, C, H, W) -> out, indices: (N, C, H_out, W_out).

    Returns:
        (out, indices or None).
    """
    geom = ConvGeometry.conv(x.shape[2:], kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    h_out, w_out = geom.out_size
    out = np.empty(x.shape[:2] + (h_out, w_out), dtype=x.dtype)
    idx = np.empty(out.shape, dtype=np.int64)
    for i in range(h_out):
        for j in range(w_out):
            out[:, :, i, j], idx[:, :, i, j] = _max_over(x, _taps(geom, i, j, x.shape[2:]))
    return out, (idx if need_indices else None)


def max_pool2d_backward(grad_out, indices, input_shape):
    """Each output's gradient goes to the input its maximum came from (overlaps add up).

    Shape:
        grad_out, indices: (N, C, H_out, W_out) -> (N, C, H, W).
    """
    n, c, h, w = input_shape
    grad = np.zeros((n * c, h * w), dtype=grad_out.dtype)  # one row per (image, channel) plane
    planes = np.arange(n * c)
    for i in range(grad_out.shape[2]):
        for j in range(grad_out.shape[3]):
            # one position: each plane gets exactly one addition, so += cannot lose any
            grad[planes, indices[:, :, i, j].ravel()] += grad_out[:, :, i, j].ravel()
    return grad.reshape(input_shape)


def _avg_windows(input_shape, kernel, stride, padding: Pads, ceil_mode, count_include_pad, divisor_override):
    """Per output position: the input rows/columns of its window and its divisor."""
    geom = ConvGeometry.conv(input_shape[2:], kernel, stride, padding, ceil_mode=ceil_mode)
    (kh, kw), (sh, sw), ((pt, _), (pl, _)) = geom.kernel, geom.stride, geom.padding
    h, w = input_shape[2:]
    for i in range(geom.out_size[0]):
        for j in range(geom.out_size[1]):
            h0, w0 = i * sh - pt, j * sw - pl
            h1, w1 = min(h0 + kh, h + pt), min(w0 + kw, w + pl)  # clipped to input + padding
            with_pad = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            inside = max(h1 - h0, 0) * max(w1 - w0, 0)
            divisor = divisor_override or (with_pad if count_include_pad else inside)
            yield i, j, slice(h0, h1), slice(w0, w1), inside, divisor


def avg_pool2d_forward(x, kernel, stride, padding: Pads, ceil_mode, count_include_pad, divisor_override=None):
    """Window sums divided by the divisor (a window with no input gives 0).

    Shape:
        x: (N, C, H, W) -> (N, C, H_out, W_out).
    """
    geom = ConvGeometry.conv(x.shape[2:], kernel, stride, padding, ceil_mode=ceil_mode)
    out = np.zeros(x.shape[:2] + geom.out_size, dtype=x.dtype)
    for i, j, rows, cols, inside, divisor in _avg_windows(
        x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    ):
        if inside:
            out[:, :, i, j] = x[:, :, rows, cols].sum(axis=(2, 3)) / x.dtype.type(divisor)
    return out


def avg_pool2d_backward(
    grad_out, input_shape, kernel, stride, padding: Pads, ceil_mode, count_include_pad, divisor_override=None
):
    """Each window spreads ``grad / divisor`` over its inputs (overlaps add up).

    Shape:
        grad_out: (N, C, H_out, W_out) -> (N, C, H, W).
    """
    grad = np.zeros(input_shape, dtype=grad_out.dtype)
    for i, j, rows, cols, inside, divisor in _avg_windows(
        input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    ):
        if inside:
            grad[:, :, rows, cols] += (grad_out[:, :, i, j] / grad_out.dtype.type(divisor))[:, :, None, None]
    return grad


def _adaptive_cells(input_shape, output_size):
    """(i, j, rows, cols) of every adaptive-pooling cell."""
    h, w = input_shape[2:]
    for i in range(output_size[0]):
        for j in range(output_size[1]):
            (h0, h1), (w0, w1) = adaptive_window(i, h, output_size[0]), adaptive_window(j, w, output_size[1])
            yield i, j, slice(h0, h1), slice(w0, w1)


def adaptive_avg_pool2d_forward(x, output_size):
    """Mean of each adaptive cell. Shape: x (N, C, H, W) -> (N, C, H_out, W_out)."""
    out = np.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
    for i, j, rows, cols in _adaptive_cells(x.shape, output_size):
        out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out


def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """Each cell spreads ``grad / cell size`` over its inputs. Shape: -> (N, C, H, W)."""
    grad = np.zeros(input_shape, dtype=grad_out.dtype)
    for i, j, rows, cols in _adaptive_cells(input_shape, grad_out.shape[2:]):
        size = (rows.stop - rows.start) * (cols.stop - cols.start)
        grad[:, :, rows, cols] += (grad_out[:, :, i, j] / grad_out.dtype.type(size))[:, :, None, None]
    return grad


def adaptive_max_pool2d_forward(x, output_size):
    """Maximum of each adaptive cell and its flat index. Shape: -> out, indices (N, C, H_out, W_out)."""
    out = np.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
    idx = np.empty(out.shape, dtype=np.int64)
    for i, j, rows, cols in _adaptive_cells(x.shape, output_size):
        taps = ((h, w) for h in range(rows.start, rows.stop) for w in range(cols.start, cols.stop))
        out[:, :, i, j], idx[:, :, i, j] = _max_over(x, taps)
    return out, idx


def adaptive_max_pool2d_backward(grad_out, indices, input_shape):
    """As :func:`max_pool2d_backward`: the gradient goes to each cell's maximum."""
    return max_pool2d_backward(grad_out, indices, input_shape)
