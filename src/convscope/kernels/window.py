"""The one windowing helper: sliding-window views, im2col and col2im.

Convolution and pooling both look at an image through KH x KW windows. This
module owns that view of the data:

* :func:`window_view` -- a read-only strided *view* of every window,
  shape (N, C, KH, KW, H_out, W_out); pooling reduces over axes 2-3 of it.
* :func:`im2col` / :func:`col2im` -- the exact column matrix (one contiguous
  copy of the view) and its adjoint (a scatter-add over the KH*KW offsets).
* :func:`phase_image` / :func:`gather_taps` -- the fast "flat" columns the
  convolution kernels use (see below).

Column layout. Columns are channel-major, ``(C * KH * KW, N * H_out * W_out)``:
rows ordered (c, kh, kw), columns ordered (n, h_out, w_out). The GEMM
``weight(C_out, C_in*KH*KW) @ cols`` then needs no transpose of the big
matrix, groups are a free reshape of the row axis, and every copy reads long
contiguous runs. Patch-major columns ``(N*H_out*W_out, C*KH*KW)`` measured
about 3x slower to build here.

Flat (phase) columns. A stride-1 window at offset (kh, kw) of a padded image
of width Wp is, in the flattened image, the contiguous run that starts at
``kh*Wp + kw`` -- if each output row is computed over the full padded width
``Wp`` instead of ``W_out`` (the extra ``Wp - W_out`` "wrap" columns are
discarded later). So each tap's columns are one long memcpy instead of
H_out short strided rows. A stride-s convolution is reduced to this case by
splitting the padded image into its s_h * s_w phases (sub-images
``xp[a::s_h, b::s_w]``): tap kh*d_h = q_h*s_h + a reads phase a at row
offset q_h with stride 1.
"""
from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .geometry import conv_output_size

__all__ = ["window_view", "pad2d", "im2col", "col2im", "phase_image", "phase_taps",
           "gather_taps", "gather_rows", "workspace", "clear_workspace"]

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]


def window_view(xp: np.ndarray, kernel: Pair, stride: Pair = (1, 1),
                dilation: Pair = (1, 1)) -> np.ndarray:
    """Read-only strided view of all sliding windows of an (already padded) image.

    Args:
        xp (ndarray): padded input (N, C, H, W).
        kernel (tuple[int, int]): (KH, KW).
        stride (tuple[int, int], default (1, 1)): (sh, sw).
        dilation (tuple[int, int], default (1, 1)): (dh, dw).

    Shape:
        xp: (N, C, H, W) -> view: (N, C, KH, KW, H_out, W_out) with
        ``H_out = floor((H - dh*(KH-1) - 1) / sh) + 1`` (same for W).

    Returns:
        ndarray: a view (no copy) with ``view[n, c, kh, kw, i, j] =
        xp[n, c, i*sh + kh*dh, j*sw + kw*dw]``; it shares memory with ``xp``.
    """
    n, c, h, w = xp.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    h_out = conv_output_size(h, kh, sh, 0, dh)
    w_out = conv_output_size(w, kw, sw, 0, dw)
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(xp, shape=(n, c, kh, kw, h_out, w_out),
                      strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw),
                      writeable=False)


def pad2d(x: np.ndarray, padding: Pads, value: float = 0.0) -> np.ndarray:
    """Constant-pad the two spatial axes (a new array; ``x`` itself when no padding).

    Args:
        x (ndarray): (N, C, H, W).
        padding (((int, int), (int, int))): ((top, bottom), (left, right)).
        value (float, default 0.0): fill value (``-inf`` for max pooling).

    Shape:
        (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    """
    (pt, pb), (pl, pr) = padding
    if pt == pb == pl == pr == 0:
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + pt + pb, w + pl + pr), value, dtype=x.dtype)
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def im2col(x: np.ndarray, kernel: Pair, stride: Pair = (1, 1),
           padding: Pads = ((0, 0), (0, 0)), dilation: Pair = (1, 1)) -> np.ndarray:
    """Exact channel-major column matrix of all windows: one contiguous copy.

    Args:
        x (ndarray): input (N, C, H, W).
        kernel, stride, dilation (tuple[int, int]): (KH, KW), (sh, sw), (dh, dw).
        padding (((int, int), (int, int))): zero padding ((top, bottom), (left, right)).

    Shape:
        x: (N, C, H, W) -> cols: (C*KH*KW, N*H_out*W_out), with
        ``H_out = floor((H + top + bottom - dh*(KH-1) - 1) / sh) + 1``.

    Returns:
        ndarray: ``cols[(c, kh, kw), (n, i, j)] = xp[n, c, i*sh + kh*dh, j*sw + kw*dw]``.
    """
    view = window_view(pad2d(x, padding), kernel, stride, dilation)
    n, c, kh, kw, h_out, w_out = view.shape
    # (N, C, KH, KW, H_out, W_out) -> (C, KH, KW, N, H_out, W_out), copied once
    cols = np.ascontiguousarray(view.transpose(1, 2, 3, 0, 4, 5))
    return cols.reshape(c * kh * kw, n * h_out * w_out)  # (C*KH*KW, N*H_out*W_out)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel: Pair,
           stride: Pair = (1, 1), padding: Pads = ((0, 0), (0, 0)),
           dilation: Pair = (1, 1)) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add columns back onto the image.

    Loops over the KH*KW kernel offsets, each a strided-slice ``+=`` over the
    whole batch (``np.add.at`` is 5-10x slower). Overlapping windows add up.

    Args:
        cols (ndarray): (C*KH*KW, N*H_out*W_out) in :func:`im2col`'s layout.
        x_shape (tuple): (N, C, H, W) of the unpadded image.
        kernel, stride, padding, dilation: as for :func:`im2col`.

    Shape:
        cols: (C*KH*KW, N*H_out*W_out) -> (N, C, H, W).

    Returns:
        ndarray: ``dx`` with ``<im2col(x), cols> == <x, dx>`` for every ``x``.
    """
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    (pt, pb), (pl, pr) = padding
    hp, wp = h + pt + pb, w + pl + pr
    h_out, w_out = conv_output_size(hp, kh, sh, 0, dh), conv_output_size(wp, kw, sw, 0, dw)
    # (C*KH*KW, N*H_out*W_out) -> (C, KH, KW, N, H_out, W_out)
    cols6 = cols.reshape(c, kh, kw, n, h_out, w_out)
    dxp = np.zeros((c, n, hp, wp), dtype=cols.dtype)  # channel-major: matches cols
    for i in range(kh):
        r0 = i * dh
        for j in range(kw):
            c0 = j * dw
            dxp[:, :, r0:r0 + sh * (h_out - 1) + 1:sh, c0:c0 + sw * (w_out - 1) + 1:sw] += cols6[:, i, j]
    # (C, N, Hp, Wp) -> (N, C, H, W), cropped
    return np.ascontiguousarray(dxp[:, :, pt:pt + h, pl:pl + w].transpose(1, 0, 2, 3))


# ----------------------------------------------------------------------------
# Flat (phase) columns for the convolution kernels
# ----------------------------------------------------------------------------

class _Workspace(threading.local):
    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}


_WS = _Workspace()


def workspace(slot: str, size: int, dtype) -> np.ndarray:
    """A reusable scratch array of ``size`` elements (contents undefined).

    Fresh 40 MB arrays cost page faults that take as long as filling them, so
    the convolution kernels keep one growing buffer per named slot (per
    thread). An array from a slot is valid until the next request of the same
    slot; kernels never return it to callers.
    """
    dtype = np.dtype(dtype)
    nbytes = int(size) * dtype.itemsize
    buf = _WS.buffers.get(slot)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(max(nbytes, 64), dtype=np.uint8)
        _WS.buffers[slot] = buf
    return buf[:nbytes].view(dtype)


def clear_workspace() -> None:
    """Release the scratch buffers of the calling thread."""
    _WS.buffers.clear()


def phase_taps(kernel: Pair, stride: Pair, dilation: Pair) -> list[tuple[int, int, int, int]]:
    """Where each kernel tap reads in the phase split of the padded image.

    Tap (kh, kw) sits at padded offset (kh*dh, kw*dw) = (qh*sh + a, qw*sw + b):
    it reads phase ``p = a*sw + b`` at row offset qh and column offset qw.

    Returns:
        list of (p, qh, qw, t) in tap order ``t = kh*KW + kw``.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    taps = []
    for i in range(kh):
        qh, a = divmod(i * dh, sh)
        for j in range(kw):
            qw, b = divmod(j * dw, sw)
            taps.append((a * sw + b, qh, qw, i * kw + j))
    return taps


def phase_image(x: np.ndarray, padding: Pads, stride: Pair, slot: str | None = None):
    """Zero-pad ``x`` and split it into its stride phases, channel-major and flat.

    Args:
        x (ndarray): (N, C, H, W).
        padding (((int, int), (int, int))): ((top, bottom), (left, right)) zeros.
        stride (tuple[int, int]): (sh, sw); (1, 1) gives one phase (plain padding).
        slot (str or None): build in this :func:`workspace` slot (else a new array).

    Shape:
        x: (N, C, H, W) -> q: (C, N, sh*sw, Hq, Wq) with ``Hq = ceil(Hp / sh)``,
        ``Hp = H + top + bottom`` (same for W), followed in memory by a zero
        tail of Wq elements so that wrap columns never read past the end.

    Returns:
        (q, flat): the 5-D array and the flat buffer it starts, with
        ``q[c, n, a*sw + b, i, j] = xp[n, c, i*sh + a, j*sw + b]`` (0 outside).
    """
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = padding
    sh, sw = stride
    hq, wq = -(-(h + pt + pb) // sh), -(-(w + pl + pr) // sw)
    size = c * n * sh * sw * hq * wq
    flat = workspace(slot, size + wq, x.dtype) if slot else np.empty(size + wq, x.dtype)
    q = flat[:size].reshape(c, n, sh * sw, hq, wq)
    xt = x.transpose(1, 0, 2, 3)  # (N, C, H, W) -> (C, N, H, W), a view
    if sh == sw == 1:
        # zero only the border; the interior is overwritten
        q[:, :, 0, :pt] = 0
        q[:, :, 0, pt + h:] = 0
        q[:, :, 0, pt:pt + h, :pl] = 0
        q[:, :, 0, pt:pt + h, pl + w:] = 0
        q[:, :, 0, pt:pt + h, pl:pl + w] = xt
    else:
        q.fill(0)
        for a in range(sh):
            h0 = (a - pt) % sh  # first input row that lands in phase row a
            i0, nh = (h0 + pt - a) // sh, len(range(h0, h, sh))
            for b in range(sw):
                w0 = (b - pl) % sw
                j0, nw = (w0 + pl - b) // sw, len(range(w0, w, sw))
                if nh and nw:
                    q[:, :, a * sw + b, i0:i0 + nh, j0:j0 + nw] = xt[:, :, h0::sh, w0::sw]
    flat[size:] = 0
    return q, flat


def gather_taps(flat: np.ndarray, q_shape: tuple, taps, rows: int, n0: int, n1: int,
                out: np.ndarray) -> np.ndarray:
    """Copy the flat columns of the selected taps for images ``n0:n1``.

    Output column ``(n, i, j)`` with ``j < Wq`` is the window at output position
    (i, j); columns with ``j >= W_out`` are wrap-around garbage that callers
    crop (or multiply by zero gradients).

    Args:
        flat (ndarray): buffer from :func:`phase_image`.
        q_shape (tuple): (C, N, P, Hq, Wq) of the phase image.
        taps (list): (p, qh, qw) per tap (extra fields ignored).
        rows (int): output rows per image (H_out).
        n0, n1 (int): image range.
        out (ndarray): destination with at least C*T*(n1-n0)*rows*Wq elements.

    Shape:
        -> cols: (C, T, n1 - n0, H_out * Wq), T = len(taps); as a matrix
        (C*T, (n1-n0)*H_out*Wq) with rows ordered (c, t).
    """
    c, n, p, hq, wq = q_shape
    length = rows * wq
    t_count = len(taps)
    it = flat.itemsize
    cols = out[:c * t_count * (n1 - n0) * length].reshape(c, t_count, n1 - n0, length)
    s_c, s_n = n * p * hq * wq * it, p * hq * wq * it
    if p == 1 and _uniform_grid(taps):
        # one copy of a single 5-D view: taps form a regular (rows x cols) grid
        (_, qh0, qw0, *_), kw_n = taps[0], _grid_width(taps)
        dqh = taps[kw_n][1] - qh0 if t_count > kw_n else 0
        dqw = taps[1][2] - qw0 if kw_n > 1 else 0
        start = n0 * p * hq * wq + qh0 * wq + qw0
        view = as_strided(flat[start:], shape=(c, t_count // kw_n, kw_n, n1 - n0, length),
                          strides=(s_c, dqh * wq * it, dqw * it, s_n, it), writeable=False)
        # (C, KH, KW, Nc, L) -> (C, KH*KW, Nc, L)
        np.copyto(cols.reshape(view.shape), view)
        return cols
    for t, (ph, qh, qw, *_) in enumerate(taps):
        start = (n0 * p + ph) * hq * wq + qh * wq + qw
        view = as_strided(flat[start:], shape=(c, n1 - n0, length),
                          strides=(s_c, s_n, it), writeable=False)
        cols[:, t] = view
    return cols


def gather_rows(flat: np.ndarray, q_shape: tuple, kw: int, dw: int, row0: int, rows: int,
                n0: int, n1: int, out: np.ndarray) -> np.ndarray:
    """Row-partial flat columns of a stride-1 image: only the KW horizontal shifts.

    ``cols[c, j, n, r*Wi + s] = q[c, n0 + n, 0, row0 + r, s + j*dw]`` (wrapping
    into the next row for ``s + j*dw >= Wi``; those entries are never used).
    The KH vertical shifts are applied after the GEMM as row offsets of its
    result, so the copy is KW (not KH*KW) times the image. With ``kw == 1``
    over whole images the result is a view of ``flat`` (``out`` is unused).

    Shape:
        -> cols: (C, KW, n1 - n0, rows*Wi); as a matrix (C*KW, (n1-n0)*rows*Wi).
    """
    c, n, p, hi, wi = q_shape
    it = flat.itemsize
    s_c, s_n = n * p * hi * wi * it, p * hi * wi * it
    length = rows * wi
    start = n0 * p * hi * wi + row0 * wi
    if rows == hi and p == 1:  # whole images: (n, position) is one contiguous run
        view = as_strided(flat[start:], shape=(c, kw, (n1 - n0) * length),
                          strides=(s_c, dw * it, it), writeable=False)
        if kw == 1:
            return view.reshape(c, 1, n1 - n0, length)
    else:
        view = as_strided(flat[start:], shape=(c, kw, n1 - n0, length),
                          strides=(s_c, dw * it, s_n, it), writeable=False)
    cols = out[:c * kw * (n1 - n0) * length].reshape(c, kw, n1 - n0, length)
    np.copyto(cols.reshape(view.shape), view)
    return cols


def _grid_width(taps) -> int:
    """Number of taps in the first kernel row (taps sharing the first qh)."""
    k = 1
    while k < len(taps) and taps[k][1] == taps[0][1]:
        k += 1
    return k


def _uniform_grid(taps) -> bool:
    """True when taps are a full rectangular grid with constant row/column steps."""
    kw_n = _grid_width(taps)
    if len(taps) % kw_n:
        return False
    qh0, qw0 = taps[0][1], taps[0][2]
    dqh = taps[kw_n][1] - qh0 if len(taps) > kw_n else 0
    dqw = taps[1][2] - qw0 if kw_n > 1 else 0
    return all(tp[1] == qh0 + (k // kw_n) * dqh and tp[2] == qw0 + (k % kw_n) * dqw
               for k, tp in enumerate(taps))
