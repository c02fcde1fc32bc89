"""Resampling kernels: ``F.interpolate`` modes 'nearest' and '(bi)linear'.

Pure NumPy, arrays in and arrays out; arguments are validated by the caller,
who also computes the output size (``floor(in * scale_factor)`` when only a
scale factor is given, as PyTorch does).

Both modes are separable: resize the last spatial axis, then the one before.
'nearest' is one gather per axis; its backward is the adjoint: source indices
never decrease along an axis, so every input collects a contiguous run of
outputs, summed as a few masked gathers (strided slices for integer factors;
no ``np.add.at``). Linear modes contract each axis with a small dense weight
matrix through BLAS when the data are finite; with a NaN/inf present they
fall back to gathers, since 0 * inf in a matrix product would leak NaN into
outputs that never read the bad input.

Source coordinates follow PyTorch's CPU kernels exactly:

* 'nearest' (legacy): ``src = min(floor(dst * scale), in - 1)`` with
  ``scale = 1 / scale_factor`` when a scale factor is given
  (recompute_scale_factor unset) else ``in / out``. For 2-D resizing PyTorch
  computes this in float32 for every dtype, with shortcuts ``out == in`` ->
  identity and ``out == 2*in`` -> ``dst >> 1`` (whatever the scale factor
  says); for 1-D it uses the input's precision, no shortcuts, and rounds the
  product to float32 before the floor. (PyTorch's float64 2-D kernel picks a
  different neighbour than its float32 kernel in about 1 of 2000 size pairs,
  where ``dst * scale`` is within 1 float32 ulp of an integer; we follow
  the float32 kernel.)
* 'linear'/'bilinear': in the input's own precision (float32 or float64),
  ``src = scale * dst`` with ``scale = (in-1)/(out-1)`` (0 when out == 1) for
  align_corners=True, where the scale factor is ignored; otherwise
  ``src = max(scale * (dst + 0.5) - 0.5, 0)`` with the nearest-mode scale.
  ``i0 = min(floor(src), in-1)``, ``i1 = i0 + (i0 < in-1)``,
  ``l1 = clip(src - i0, 0, 1)``, ``l0 = 1 - l1``; ``out == in`` is the identity.
"""

from __future__ import annotations

import numpy as np


def _scales(scale_factor, n):
    if scale_factor is None:
        return (None,) * n
    if np.ndim(scale_factor) == 0:
        return (float(scale_factor),) * n
    return tuple(None if s is None else float(s) for s in scale_factor)


def nearest_source_index(n_in, n_out, scale_factor=None, spatial_dims=2, dtype=np.float32):
    """Input index read by each output position of legacy 'nearest' (PyTorch's rule).

    Args:
        n_in, n_out (int): input and output length of the axis.
        scale_factor (float or None): the user's scale factor for this axis.
        spatial_dims (int, default 2): PyTorch runs 2-D resizing through a
            float32 kernel with the ``out == in`` / ``out == 2*in`` shortcuts,
            and 1-D/3-D through a generic one in the input's precision.
        dtype: input dtype (used by the generic 1-D/3-D rule).

    Returns:
        ndarray: int64 of length ``n_out``, non-decreasing.
    """
    if spatial_dims == 2:
        if n_out == n_in:
            return np.arange(n_out)
        if n_out == 2 * n_in:
            return np.arange(n_out) >> 1
        t = np.float32
    else:
        t = np.dtype(dtype).type
    if scale_factor is not None and scale_factor > 0:
        scale = t(1.0 / scale_factor)
    else:
        scale = t(n_in) / t(n_out)
    src = (np.arange(n_out).astype(t) * scale).astype(np.float32)  # floorf: float32 floor
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1)


def linear_source_weights(n_in, n_out, align_corners, scale_factor=None, dtype=np.float32):
    """Neighbours and weights of each output position of (bi)linear interpolation.

    Returns:
        (i0, i1, l0, l1): int64 indices (non-decreasing) and ``dtype`` weights,
        each of length ``n_out``; output j is ``l0[j]*x[i0[j]] + l1[j]*x[i1[j]]``.
    """
    t = np.dtype(dtype).type  # PyTorch's opmath: float for float32, double for float64
    j = np.arange(n_out)
    if n_out == n_in:
        return j, j, np.ones(n_out, dtype), np.zeros(n_out, dtype)
    if align_corners:
        scale = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = scale * j.astype(dtype)
    else:
        if scale_factor is not None and scale_factor > 0:
            scale = t(1.0 / scale_factor)
        else:
            scale = t(n_in) / t(n_out)
        src = np.maximum(scale * (j.astype(dtype) + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    l1 = np.clip(src - i0.astype(dtype), t(0), t(1))
    return i0, i1, t(1) - l1, l1


def _along(v, axis, ndim):
    """Reshape a 1-D per-position vector to broadcast along ``axis`` of an ndim array."""
    return v.reshape((-1,) + (1,) * (ndim - 1 - axis))  # (n,) -> (n, 1, ..., 1)


def _scatter_runs(v, index, n, axis):
    """Adjoint of ``take(index, axis)`` for a non-decreasing ``index``.

    Input i was read by the run of outputs ``[first[i], first[i] + count[i])``,
    so its gradient is a short masked sum of gathers (the longest run is
    ``ceil(out / in)``); ``np.add.reduceat`` / ``np.add.at`` were several
    times slower along the non-contiguous axes.

    Shape: v (..., len(index), ...) -> (..., n, ...) along ``axis``; entry i is
    the sum of the entries of ``v`` whose index is i (0 when none).
    """
    inputs = np.arange(n)
    first = np.searchsorted(index, inputs, side="left")
    count = np.searchsorted(index, inputs, side="right") - first
    shape = list(v.shape)
    shape[axis] = n
    kmax = int(count.max())
    if (count == kmax).all() and len(index) == n * kmax:  # integer upsampling: strided slices
        parts = [v[(slice(None),) * axis + (slice(k, None, kmax),)] for k in range(kmax)]
        return parts[0].copy() if kmax == 1 else sum(parts[2:], parts[0] + parts[1])
    acc = np.zeros(shape, v.dtype) if kmax == 0 else None
    for k in range(kmax):
        part = v.take(np.minimum(first + k, len(index) - 1), axis=axis)
        short = k >= count
        if short.any():
            part[(slice(None),) * axis + (short,)] = 0
        acc = part if acc is None else np.add(acc, part, out=acc)
    return acc


_DENSE_MAX = 256  # contract with a dense weight matrix up to this input length


def _linear_along(a, axis, weights, n_in, adjoint=False):
    """Apply one axis of linear interpolation (or its adjoint) to ``a``.

    Finite data and short axes use a dense (n_out, n_in) weight matrix and BLAS
    (2-5x faster than gathers here); otherwise two gathers (forward) or two
    run sums (adjoint), so a NaN/inf only reaches the outputs that read it.

    Shape: a (..., n_in, ...) -> (..., n_out, ...) along ``axis``
    (adjoint: (..., n_out, ...) -> (..., n_in, ...)).
    """
    i0, i1, l0, l1 = weights
    n_out = len(i0)
    if n_in <= _DENSE_MAX and n_out <= 4 * _DENSE_MAX and np.isfinite(a).all():
        m = np.zeros((n_out, n_in), a.dtype)
        m[np.arange(n_out), i0] = l0
        m[np.arange(n_out), i1] += l1  # i1 == i0 at the last pixel, where l1 == 0
        m = m.T if adjoint else m  # (new, old) along the axis
        moved = np.moveaxis(a, axis, -2) if axis != a.ndim - 1 else None
        if moved is None:
            lead = a.shape[:-1]
            res = a.reshape(-1, a.shape[-1]) @ m.T  # (prod(lead), old) -> (prod(lead), new)
            return res.reshape(lead + (m.shape[0],))  # (prod(lead), new) -> (*lead, new)
        return np.moveaxis(np.matmul(m, moved), -2, axis)  # (..., old, W) -> (..., new, W)
    nd = a.ndim
    with np.errstate(invalid="ignore"):  # 0 * inf -> NaN, exactly as PyTorch computes it
        if adjoint:
            return _scatter_runs(a * _along(l0, axis, nd), i0, n_in, axis) + _scatter_runs(
                a * _along(l1, axis, nd), i1, n_in, axis
            )
        near = a.take(i0, axis=axis)
        near *= _along(l0, axis, nd)
        far = a.take(i1, axis=axis)
        far *= _along(l1, axis, nd)
        return np.add(near, far, out=near)


def interpolate_forward(x, size, mode="nearest", align_corners=False, scale_factor=None):
    """Resize the trailing spatial dims of ``x`` like ``F.interpolate``.

    Args:
        x (ndarray): input, float dtype (kept).
        size (tuple[int, ...]): output size of the last ``len(size)`` dims,
            (H_out, W_out) for 4-D input, (W_out,) for 3-D.
        mode (str, default 'nearest'): 'nearest', or 'bilinear' (4-D) /
            'linear' (3-D).
        align_corners (bool, default False): linear modes only.
        scale_factor (float, tuple or None): the user's scale factor; when
            given it sets the source-coordinate scale (``1/scale_factor``)
            instead of ``in/out``, as PyTorch does without
            recompute_scale_factor.

    Shape:
        x (N, C, H, W) -> (N, C, H_out, W_out); x (N, C, W) -> (N, C, W_out).

    Returns:
        ndarray: a new array of x's dtype.
    """
    nd = len(size)
    out = x
    for axis, n_out, sf in reversed(
        list(zip(range(x.ndim - nd, x.ndim), size, _scales(scale_factor, nd), strict=True))
    ):
        n_in = out.shape[axis]
        if mode == "nearest":
            idx = nearest_source_index(n_in, n_out, sf, nd, x.dtype)
            out = out.take(idx, axis=axis)
        elif n_out != n_in:
            weights = linear_source_weights(n_in, n_out, align_corners, sf, x.dtype)
            out = _linear_along(out, axis, weights, n_in)
    return out.copy() if out is x else out


def interpolate_backward(grad_out, input_shape, size, mode="nearest", align_corners=False, scale_factor=None):
    """Gradient of :func:`interpolate_forward` with respect to its input.

    Args:
        grad_out (ndarray): gradient of the resized output.
        input_shape (tuple): shape of the forward input.
        size, mode, align_corners, scale_factor: as given to the forward
            (``size`` equals grad_out's trailing shape).

    Shape:
        grad_out (N, C, H_out, W_out) -> grad_input (N, C, H, W) (3-D likewise).

    Returns:
        ndarray: grad_input, dtype of grad_out; each input collects the
        weighted gradients of every output that read it.
    """
    ndim = grad_out.ndim
    nd = ndim - 2  # spatial dims after (N, C)
    g = grad_out
    for axis, sf in zip(
        range(2, ndim), _scales(scale_factor, nd), strict=True
    ):  # reverse of the forward order
        n_in, n_out = input_shape[axis], g.shape[axis]
        if mode == "nearest":
            idx = nearest_source_index(n_in, n_out, sf, nd, g.dtype)
            g = _scatter_runs(g, idx, n_in, axis)
        elif n_out != n_in:
            weights = linear_source_weights(n_in, n_out, align_corners, sf, g.dtype)
            g = _linear_along(g, axis, weights, n_in, adjoint=True)
    return g.copy() if g is grad_out else g
