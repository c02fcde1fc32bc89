"""Padding kernels with ``torch.nn.functional.pad`` semantics, forward and backward.

Pure NumPy, arrays in and arrays out; arguments are validated by the caller
(PyTorch's rules: non-constant modes pad the last 1, 2 or 3 dims of a 2-3,
3-4 or 4-5 dim input; reflect pads must be smaller than the dim; circular
pads at most the dim). The kernels themselves work for any number of padded
dims.

``pads`` is PyTorch's flat tuple starting from the LAST dimension:
``(left, right, top, bottom, front, back, ...)``. A negative pad crops.
Every mode here first crops by the negative pads and then pads the cropped
array. That is PyTorch's 'circular' (``pad([0..4], (-1, 2))`` wraps around
the cropped ``[1..4]`` and gives ``[1, 2, 3, 4, 1, 2]``), but PyTorch's
'reflect' and 'replicate' read the borders from the whole input and crop
afterwards (``[1, 2, 3, 4, 3, 2]``): ``nn.functional.pad`` gets that by
padding with the positive amounts and then cropping with the negative ones.

Modes along one dim of (cropped) length ``n``, for output position ``j``
with source ``p = j - before``:
  * 'constant': ``value`` outside ``[0, n)``;
  * 'reflect': mirror without repeating the edge (``-1 -> 1``, ``n -> n-2``);
  * 'replicate': clamp to ``[0, n-1]``;
  * 'circular': ``p mod n``.
"""

from __future__ import annotations

import numpy as np


def _pairs(pads, ndim):
    """((axis, before, after), ...) from PyTorch's flat last-dim-first pad tuple."""
    return [(ndim - 1 - i, int(pads[2 * i]), int(pads[2 * i + 1])) for i in range(len(pads) // 2)]


def _copy_slices(shape, pairs):
    """(src, dst): the kept (cropped) part of an input of ``shape`` and where it lands."""
    src, dst = [slice(None)] * len(shape), [slice(None)] * len(shape)
    for axis, before, after in pairs:
        src[axis] = slice(max(-before, 0), shape[axis] - max(-after, 0))
        dst[axis] = slice(max(before, 0), max(before, 0) + src[axis].stop - src[axis].start)
    return tuple(src), tuple(dst)


def _source_index(n, before, after, mode):
    """Input position feeding each of the ``before + n + after`` outputs along one dim."""
    p = np.arange(-before, n + after)
    if mode == "reflect":
        p = np.abs(p)
        return np.where(p >= n, 2 * (n - 1) - p, p)
    if mode == "replicate":
        return np.clip(p, 0, n - 1)
    if mode == "circular":
        return p % n
    raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")


def _at(ndim, axis, index):
    """Index tuple selecting ``index`` (int array or slice) along ``axis``."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - 1 - axis)


def pad_forward(x, pads, mode="constant", value=0.0):
    """Pad (or, with negative pads, crop) the last ``len(pads) // 2`` dims of ``x``.

    Args:
        x (ndarray): input, any dtype (kept).
        pads (sequence of int): ``(left, right, top, bottom, ...)``, last dim first.
        mode (str, default 'constant'): 'constant', 'reflect', 'replicate'
            or 'circular'.
        value (float, default 0.0): fill for 'constant' (cast to x.dtype).

    Shape:
        x (*, D_k, ..., D_1) -> (*, D_k + pads[2k-2] + pads[2k-1], ...,
        D_1 + pads[0] + pads[1]); dim ``D_i`` (counted from the last) grows by
        ``pads[2i-2] + pads[2i-1]``.

    Returns:
        ndarray: a new array (never a view of ``x``).
    """
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    pairs = _pairs(pads, x.ndim)
    shape = list(x.shape)
    for axis, before, after in pairs:
        shape[axis] += before + after
    src, dst = _copy_slices(x.shape, pairs)
    if mode == "constant":
        out = np.full(shape, value, dtype=x.dtype)
        out[dst] = x[src]
        return out
    out = np.empty(shape, dtype=x.dtype)
    out[dst] = x[src]  # the cropped input, once
    # fill each dim's borders from out itself, over the full extent of the other
    # dims: a later dim overwrites the corners an earlier one left unfinished
    for axis, before, after in pairs:
        before, after = max(before, 0), max(after, 0)
        n = shape[axis] - before - after
        source = _source_index(n, before, after, mode) + before  # positions in out
        for border in (slice(0, before), slice(before + n, shape[axis])):
            if border.stop > border.start:
                out[_at(x.ndim, axis, border)] = out.take(source[border], axis=axis)
    return out


def _fold(g, axis, n, before, after, mode):
    """Adjoint of one dim's padding: add each border gradient to its source.

    Shape: g (..., before + n + after, ...) -> (..., n, ...) along ``axis``.
    """
    nd = g.ndim
    res = np.array(g[_at(nd, axis, slice(before, before + n))], copy=True)  # interior maps 1:1
    source = _source_index(n, before, after, mode)
    for border in (slice(0, before), slice(before + n, before + n + after)):
        targets = source[border]
        if targets.size == 0:
            continue
        part = g[_at(nd, axis, border)]
        if np.unique(targets).size == targets.size:  # reflect, circular: distinct sources
            res[_at(nd, axis, targets)] += part
        else:  # replicate: the whole border comes from one edge
            for t in np.unique(targets):
                res[_at(nd, axis, slice(t, t + 1))] += part[_at(nd, axis, targets == t)].sum(
                    axis=axis, keepdims=True
                )
    return res


def pad_backward(grad_out, input_shape, pads, mode="constant"):
    """Gradient of :func:`pad_forward` with respect to its input.

    Args:
        grad_out (ndarray): gradient of the padded output.
        input_shape (tuple): shape of the forward input.
        pads (sequence of int): the forward ``pads``.
        mode (str): the forward mode. For 'reflect', 'replicate' and
            'circular' every input collects the gradients of all outputs
            copied from it; cropped-away inputs get zero.

    Shape:
        grad_out (padded shape) -> grad_input (input_shape).

    Returns:
        ndarray: grad_input, dtype of grad_out.
    """
    pairs = _pairs(pads, len(input_shape))
    src, dst = _copy_slices(input_shape, pairs)
    g = grad_out[dst]  # gradient of the kept inputs ('constant': all of it)
    if mode != "constant":
        g = grad_out
        for axis, before, after in pairs:
            before, after = max(before, 0), max(after, 0)
            if before or after:
                g = _fold(g, axis, g.shape[axis] - before - after, before, after, mode)
    grad_in = np.zeros(input_shape, grad_out.dtype)
    grad_in[src] = g
    return grad_in
