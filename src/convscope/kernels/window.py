"""The one windowing helper: sliding-window views, padded copies and scratch buffers.

Convolution and pooling both look at an image through KH x KW windows. This
module owns that view of the data:

* :func:`window_view` -- a read-only strided *view* of every window,
  shape (N, C, KH, KW, H_out, W_out); pooling reduces over axes 2-3 of it.
* the textbook im2col / col2im are in :mod:`convscope.kernels.reference.conv`; the
  kernels here copy the same columns from :func:`window_view` in cache-sized chunks.
* :func:`pad_into`, :func:`workspace` -- padded images and columns in reusable
  scratch buffers (chunks run on all cores with :func:`convscope.kernels.parallel.run_chunks`).
* :func:`flat_image` / :func:`gather_rows` -- "row-partial" columns (below).

Column layout. Columns are channel-major, ``(C * KH * KW, N * H_out * W_out)``:
rows ordered (c, kh, kw), columns ordered (n, h_out, w_out). The GEMM
``weight(C_out, C_in*KH*KW) @ cols`` then needs no transpose of the big
matrix, groups are a free reshape of the row axis, and the result needs one
(C_out, N) -> (N, C_out) transpose of the (much smaller) output. Per-image
batched GEMMs (output already NCHW) measured no faster here.

Row-partial columns (stride 1). In the flattened padded image (width Wp),
shifting by ``kh*Wp`` moves a window down kh rows. So a convolution can copy
only the KW horizontal shifts (KW times the image, not KH*KW), run one GEMM
that produces a result per kernel row, and add the KH results at row offsets
``kh*dh*Wp``. Each output row is computed over the full padded width; the
extra ``Wp - W_out`` "wrap" columns are dropped when the rows are added.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .geometry import conv_output_size
from .parallel import PASS_CHUNK_BYTES, PASS_PARALLEL_MIN_BYTES, images_per_chunk, run_chunks

__all__ = [
    "window_view",
    "pad2d",
    "pad_into",
    "flat_image",
    "gather_rows",
    "workspace",
    "clear_workspace",
]

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]


def window_view(xp: np.ndarray, kernel: Pair, stride: Pair = (1, 1), dilation: Pair = (1, 1)) -> np.ndarray:
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
    return as_strided(
        xp,
        shape=(n, c, kh, kw, h_out, w_out),
        strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw),
        writeable=False,
    )


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
    out[:, :, pt : pt + h, pl : pl + w] = x
    return out


# ----------------------------------------------------------------------------
# Scratch buffers and row-partial columns for the convolution kernels
# ----------------------------------------------------------------------------


class _Workspace(threading.local):
    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}
        self.zero_border: dict[str, tuple] = {}  # slot -> layout whose padding is all zeros


_WS = _Workspace()

# Scratch slots (one buffer per slot and thread; see workspace). Only pad_into writes the PAD_* ones.
COLS = "cols"  # column matrices of the conv GEMMs
RESULT = "res"  # GEMM results before they are added into the output
G_CHANNEL_MAJOR = "gcm"  # the output gradient laid out (C_out, N, H_out, W_row) for dW
PAD_X = "pad"  # the zero-padded input of a correlation
PAD_G = "gpad"  # the zero-padded output gradient (input gradient of a conv, transposed conv forward)
#: the channel-major (C, N, Hp, Wp) padded copy that goes with each PAD_* slot (flat_image)
CHANNEL_MAJOR = {PAD_X: "pad_cm", PAD_G: "gpad_cm"}


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
    _WS.zero_border.clear()


def pad_into(
    x: np.ndarray, padding: Pads, slot: str, channel_major: bool = False, tail: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad x into a :func:`workspace` slot owned by this function.

    Writing the zero border costs as much as copying the image (it is made of
    1-element strided runs), so it is skipped when the slot already holds a
    padded image of the same layout (consecutive layers of a network stage).
    Border and pixels are written chunk by chunk, in threads for large inputs.

    Args:
        x (ndarray): (N, C, H, W), any strides.
        padding (((int, int), (int, int))): ((top, bottom), (left, right)) zeros.
        slot (str): scratch slot; only ``pad_into`` may write to it.
        channel_major (bool, default False): lay out as (C, N, Hp, Wp).
        tail (int, default 0): zeros after the array in the flat buffer.

    Shape:
        x: (N, C, H, W) -> (N, C, Hp, Wp) or (C, N, Hp, Wp), Hp = H + top + bottom.

    Returns:
        (xp, flat): the padded 4-D array and the flat buffer it starts.
    """
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = padding
    hp, wp = h + pt + pb, w + pl + pr
    size = n * c * hp * wp
    flat = workspace(slot, size + tail, x.dtype)
    xp = flat[:size].reshape((c, n, hp, wp) if channel_major else (n, c, hp, wp))  # (C, N, ..) or (N, C, ..)
    layout = (xp.shape, padding, x.dtype, tail, _WS.buffers[slot].ctypes.data)
    border = _WS.zero_border.get(slot) != layout
    if border:
        _WS.zero_border.pop(slot, None)  # invalid until the new border is complete
        flat[size:] = 0
    # (N, C, H, W) -> (C, N, H, W) when channel-major
    src = x.transpose(1, 0, 2, 3) if channel_major else x

    def fill(n0, n1):
        """Images n0..n1: zero border (unless the slot already has it), then the pixels."""
        part, pix = (xp[:, n0:n1], src[:, n0:n1]) if channel_major else (xp[n0:n1], src[n0:n1])
        if border:
            part[:, :, :pt] = 0
            part[:, :, pt + h :] = 0
            part[:, :, pt : pt + h, :pl] = 0
            part[:, :, pt : pt + h, pl + w :] = 0
        part[:, :, pt : pt + h, pl : pl + w] = pix

    if x.nbytes < PASS_PARALLEL_MIN_BYTES:
        fill(0, n)
    else:  # a memory-bound copy: split over the images, on all cores
        run_chunks(n, images_per_chunk(x, PASS_CHUNK_BYTES), True, fill)
    if border:
        _WS.zero_border[slot] = layout
    return xp, flat


def flat_image(x: np.ndarray, padding: Pads, slot: str) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded, channel-major copy of ``x`` followed by a zero tail (see :func:`pad_into`).

    Shape:
        x: (N, C, H, W) -> q: (C, N, Hp, Wp); in memory it is followed by Wp
        zeros so that shifted reads never leave the buffer.

    Returns:
        (q, flat): the 4-D array and the 1-D buffer it starts.
    """
    (pt, pb), (pl, pr) = padding
    return pad_into(x, padding, slot, channel_major=True, tail=x.shape[3] + pl + pr)


def gather_rows(
    flat: np.ndarray,
    q_shape: tuple,
    kw: int,
    dw: int,
    row0: int,
    rows: int,
    n0: int,
    n1: int,
    out: np.ndarray,
) -> np.ndarray:
    """Row-partial columns of a stride-1 image: only the KW horizontal shifts.

    ``cols[c, j, n, r*Wp + s] = q[c, n0 + n, row0 + r, s + j*dw]`` (wrapping
    into the next row for ``s + j*dw >= Wp``; those entries are never used).
    With ``kw == 1`` over whole images the result is a view of ``flat``
    (``out`` is unused).

    Shape:
        -> cols: (C, KW, n1 - n0, rows*Wp); as a matrix (C*KW, (n1-n0)*rows*Wp).
    """
    c, n, hp, wp = q_shape
    it = flat.itemsize
    length = rows * wp
    start = n0 * hp * wp + row0 * wp
    if rows == hp:  # whole images: (n, position) is one contiguous run
        view = as_strided(
            flat[start:],
            shape=(c, kw, (n1 - n0) * length),
            strides=(n * hp * wp * it, dw * it, it),
            writeable=False,
        )
        if kw == 1:
            return view.reshape(c, 1, n1 - n0, length)  # (C, 1, Nc*L) -> (C, KW=1, Nc, L), still a view
    else:
        view = as_strided(
            flat[start:],
            shape=(c, kw, n1 - n0, length),
            strides=(n * hp * wp * it, dw * it, hp * wp * it, it),
            writeable=False,
        )
    cols = out[: c * kw * (n1 - n0) * length].reshape(c, kw, n1 - n0, length)  # (C, KW, Nc, L)
    np.copyto(cols.reshape(view.shape), view)  # (C, KW, Nc*L) or (C, KW, Nc, L), same memory order
    return cols
