"""2-D convolution and transposed convolution: NumPy forward and backward kernels.

They compute exactly what :mod:`convscope.kernels.reference.conv` computes (``conv2d_forward``
there: the lecture's loops and textbook im2col); read that first. This module is the same
arithmetic arranged for speed.

Arrays in, arrays out (no Tensor). Everything is one primitive, a
cross-correlation with an output window (:func:`_corr`), computed as BLAS
GEMMs on channel-major columns (see :mod:`convscope.kernels.window`):

* forward:     ``out = W (C_out, C_in*KH*KW) @ cols(x)``;
* weight grad: ``dW^T = cols(x) @ g^T`` (columns recomputed, not saved);
* input grad:  per stride phase (a, b) -- the input pixels ``xp[a::sh, b::sw]``
  -- a *stride-1* correlation of zero-padded g with the flipped sub-kernel of
  the taps that land there: no col2im scatter, no products with inserted zeros.

A transposed convolution is the input gradient of a convolution, so its
forward is the input-grad path and its backward the forward and weight-grad
paths.

Column layouts: "tap" columns (C_in*KH*KW rows) -- flat at stride 1 (each
window row spans the whole padded row, so copies are long memcpys; the wrap
columns are dropped) and exact otherwise -- or "row" columns (C_in*KW rows,
the KH kernel rows added after the GEMM), chosen by :func:`_prefer_rows`
when they move less data.

Memory and speed: GEMMs run over chunks of whole images whose columns fit
``min(COLUMN_BUDGET_BYTES, CACHE_BLOCK_BYTES)``: they stay in L2 cache
between the copy, the GEMM and the read-back (1.2-1.8x faster here than
whole-batch GEMMs), memory stays bounded, and chunks run on all cores
(:func:`convscope.kernels.parallel.run_chunks`). Columns live in reusable
per-thread scratch buffers (fresh large arrays cost page faults as long as
the copy); backward keeps only references to x and W, like PyTorch.

Caveat: wrap columns are computed from real pixels and then dropped or
multiplied by zero, so a NaN/inf in the input can reach more entries of dx
and dW than in PyTorch (never of the forward output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .batchnorm import channel_sums
from .geometry import NO_PADS, ConvGeometry, Pads
from .parallel import PARALLEL_MIN_FLOPS, run_chunks  # fewer GEMM flops: serial chunks
from .window import (
    CHANNEL_MAJOR,
    COLS,
    G_CHANNEL_MAJOR,
    PAD_G,
    PAD_X,
    RESULT,
    flat_image,
    gather_rows,
    pad_into,
    window_view,
    workspace,
)

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
    "ConvSaved",
    "COLUMN_BUDGET_BYTES",
    "CACHE_BLOCK_BYTES",
    "PARALLEL_MIN_FLOPS",
]

#: Hard cap on the column matrix (bytes) built at once; bigger batches are chunked.
COLUMN_BUDGET_BYTES = 256 * 2**20
#: Columns per chunk when chunks run in parallel (each thread's chunk stays in
#: its core's L2); serial runs use half (both measured best here among 0.5/1/2 MiB).
CACHE_BLOCK_BYTES = 2**20

Pair = tuple[int, int]


@dataclass
class ConvSaved:
    """What backward needs: the inputs (by reference) and the geometry (of the convolution,
    also for a transposed convolution: :meth:`ConvGeometry.as_conv`)."""

    x: np.ndarray
    weight: np.ndarray
    has_bias: bool
    geom: ConvGeometry


def _chunk(per_image_bytes: int, n: int, flops: float) -> tuple[int, bool]:
    """(images per chunk, run chunks in parallel?); chunks fit the cache block and budget."""
    parallel = flops >= PARALLEL_MIN_FLOPS
    block = CACHE_BLOCK_BYTES if parallel else CACHE_BLOCK_BYTES // 2
    return max(1, min(n, min(COLUMN_BUDGET_BYTES, block) // max(per_image_bytes, 1))), parallel


def _prefer_rows(c_in: int, c_out: int, kh: int, kw: int) -> bool:
    """Row columns for a stride-1 correlation c_in -> c_out (per group)?

    Per output pixel, tap columns move ~C_in*KH*KW values; row columns
    ~C_in*KW plus ~2*KH*C_out for the GEMM result and its row-shifted sums.
    Measured (chunked): rows win clearly when they move less (dx of LeNet's
    conv2: 2.3 vs 4.5 ms), tie on equal channels, lose otherwise.
    """
    return c_in * kw + 2 * kh * c_out < c_in * kh * kw


def _use_flat(stride: Pair) -> bool:
    """Flat tap columns at stride 1 (measured equal or up to 1.5x faster than exact)."""
    return stride == (1, 1)


def _windows(
    x,
    pads: Pads,
    kernel: Pair,
    stride: Pair,
    dilation: Pair,
    out_hw: Pair,
    offset: Pair = (0, 0),
    slot: str = PAD_X,
) -> np.ndarray:
    """Windows of padded x: ``v[n, c, kh, kw, i, j] = xp[n, c, oh + i*sh + kh*dh, ow + j*sw + kw*dw]``.

    Exact windows have ``j < W_out``. Flat windows (stride 1 only) run j over the
    whole padded row width Wp, so that (i, j) is one contiguous run of the
    padded image: copies of it are long memcpys instead of W_out-long pieces;
    entries with ``j >= W_out`` wrap into the next row and are dropped later.

    Shape:
        -> view (N, C, KH, KW, H_out, W_out or Wp) (over x or a scratch buffer).
    """
    (oh, ow), (h_out, w_out), (pt, pb), (pl, pr) = offset, out_hw, *pads
    n, c, h, w = x.shape
    hp, wp = h + pt + pb, w + pl + pr
    if _use_flat(stride):
        _, flat = pad_into(x, pads, slot, tail=wp)
        it = flat.itemsize
        (kh, kw), (dh, dw) = kernel, dilation
        return as_strided(
            flat[oh * wp + ow :],
            shape=(n, c, kh, kw, h_out, wp),
            strides=(c * hp * wp * it, hp * wp * it, dh * wp * it, dw * it, wp * it, it),
            writeable=False,
        )
    if pads != NO_PADS:
        x = pad_into(x, pads, slot)[0]
    xp = x[:, :, oh:, ow:]
    return window_view(xp, kernel, stride, dilation)[..., :h_out, :w_out]


def _taps_corr(x, weight, bias, pads, stride, dilation, groups, out_hw, offset, slot, out) -> np.ndarray:
    """Cross-correlation with tap columns (any stride). See :func:`_corr`."""
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = weight.shape
    grp, c_og = groups, c_out // groups
    h_out, w_out = out_hw
    view = _windows(x, pads, (kh, kw), stride, dilation, out_hw, offset, slot)
    w_row = view.shape[5]  # W_out, or Wp for flat windows
    dtype, length, rows = x.dtype, h_out * w_row, c_g * kh * kw
    w_mat = weight.astype(dtype, copy=False).reshape(grp, c_og, rows)  # (G, C_out/G, C_in/G*KH*KW)
    out = np.empty((n, c_out, h_out, w_out), dtype=dtype) if out is None else out
    # bias (C_out,) -> (C_out, 1, 1)
    bias_col = None if bias is None else bias.astype(dtype, copy=False).reshape(c_out, 1, 1)

    def chunk(n0, n1):
        nc = n1 - n0
        # scratch -> (C_in, KH, KW, Nc, H_out, W_row)
        cols = workspace(COLS, c_in * kh * kw * nc * length, dtype).reshape(c_in, kh, kw, nc, h_out, w_row)
        # (Nc, C_in, KH, KW, H_out, W_row) -> (C_in, KH, KW, Nc, H_out, W_row): the one copy
        np.copyto(cols, view[n0:n1].transpose(1, 2, 3, 0, 4, 5))
        # scratch -> (G, C_out/G, Nc*L)
        res = workspace(RESULT, c_out * nc * length, dtype).reshape(grp, c_og, nc * length)
        # cols (C_in, KH, KW, Nc, H_out, W_row) -> (G, C_in/G*KH*KW, Nc*L)
        np.matmul(w_mat, cols.reshape(grp, rows, nc * length), out=res)
        # (C_out, Nc, H_out, W_row) -> (Nc, C_out, H_out, W_out), wrap columns dropped
        res_nchw = res.reshape(c_out, nc, h_out, w_row)[..., :w_out].transpose(1, 0, 2, 3)
        if bias_col is None:
            np.copyto(out[n0:n1], res_nchw)
        else:
            np.add(res_nchw, bias_col, out=out[n0:n1])

    flops = 2.0 * c_out * rows * n * length
    run_chunks(n, *_chunk(c_in * kh * kw * length * dtype.itemsize, n, flops), chunk)
    return out


def _rows_corr(x, weight, bias, pads, dilation, groups, out_hw, offset, slot, out) -> np.ndarray:
    """Stride-1 cross-correlation with row columns. See :func:`_corr`.

    One GEMM ``(KH*C_out, C_in*KW) @ (C_in*KW, M)`` gives, per kernel row kh,
    the sum over kw and c; kernel row kh is then read ``kh*dh`` rows lower.
    """
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = weight.shape
    grp, c_og = groups, c_out // groups
    (h_out, w_out), (oh, ow), (dh, dw) = out_hw, offset, dilation
    dtype = x.dtype
    q, flat = flat_image(x, pads, CHANNEL_MAJOR[slot])  # (C_in, N, Hp, Wp)
    wp = q.shape[3]
    rows = h_out + (kh - 1) * dh  # image rows that feed the output window
    length = rows * wp
    # (C_out, C_in/G, KH, KW) -> (G, KH, C_out/G, C_in/G, KW) -> (G, KH*C_out/G, C_in/G*KW)
    w_rows = weight.astype(dtype, copy=False).reshape(grp, c_og, c_g, kh, kw).transpose(0, 3, 1, 2, 4)
    w_rows = np.ascontiguousarray(w_rows).reshape(grp, kh * c_og, c_g * kw)
    out = np.empty((n, c_out, h_out, w_out), dtype=dtype) if out is None else out
    # bias (C_out,) -> (G, C_out/G, 1, 1, 1)
    bias_grouped = None if bias is None else bias.astype(dtype, copy=False).reshape(grp, c_og, 1, 1, 1)

    def chunk(n0, n1):
        nc = n1 - n0
        m = nc * length
        scratch = workspace(COLS, c_in * kw * m, dtype)
        cols = gather_rows(flat, q.shape, kw, dw, oh, rows, n0, n1, scratch)
        y = workspace(RESULT, kh * c_out * m, dtype).reshape(grp, kh * c_og, m)  # (G, KH*C_out/G, M)
        # cols (C_in, KW, Nc, L) -> (G, C_in/G*KW, M)
        np.matmul(w_rows, cols.reshape(grp, c_g * kw, m), out=y)
        y_rows = y.reshape(grp, kh, c_og, nc, rows, wp)  # (G, KH, C_out/G, Nc, rows, Wp)
        # (Nc, C_out, H_out, W_out) -> (G, C_out/G, Nc, H_out, W_out), a view of out
        dst = out[n0:n1].reshape(nc, grp, c_og, h_out, w_out).transpose(1, 2, 0, 3, 4)
        shifted = [y_rows[:, k, :, :, k * dh : k * dh + h_out, ow : ow + w_out] for k in range(kh)]
        if kh == 1:
            np.copyto(dst, shifted[0])
        else:
            np.add(shifted[0], shifted[1], out=dst)
            for part in shifted[2:]:
                dst += part
        if bias_grouped is not None:
            dst += bias_grouped

    flops = 2.0 * kh * c_out * c_g * kw * n * length
    run_chunks(n, *_chunk(max(c_in * kw, kh * c_out) * length * dtype.itemsize, n, flops), chunk)
    return out


def _corr(
    x,
    weight,
    bias,
    pads: Pads,
    stride: Pair,
    dilation: Pair,
    groups: int,
    out_hw: Pair,
    offset: Pair = (0, 0),
    slot: str = PAD_X,
    out=None,
) -> np.ndarray:
    """Cross-correlation of zero-padded x with an output window (plus bias).

    ``out[n, co, i, j] = b[co] + sum_{c, kh, kw} w[co, c, kh, kw] *
    xp[n, g*C_in/G + c, oh + i*sh + kh*dh, ow + j*sw + kw*dw]``, with ``xp`` = x
    zero-padded by ``pads``, g = co's group and (oh, ow) = offset.

    ``out``, if given, is written in place (any strides, e.g. one stride phase of dx);
    each chunk writes its images from its own thread.

    Shape:
        x: (N, C_in, H, W), weight: (C_out, C_in/groups, KH, KW) ->
        (N, C_out, H_out, W_out), (H_out, W_out) = out_hw (at most the full size).
    """
    c_out, c_g, kh, kw = weight.shape
    if stride == (1, 1) and _prefer_rows(c_g, c_out // groups, kh, kw):
        return _rows_corr(x, weight, bias, pads, dilation, groups, out_hw, offset, slot, out)
    return _taps_corr(x, weight, bias, pads, stride, dilation, groups, out_hw, offset, slot, out)


def _axis_phases(k: int, d: int, s: int, p: int, size: int):
    """Per stride phase of one axis: which input pixels, and which taps reach them.

    Input pixel h (padded h + p) with ``(h + p) % s == a`` receives tap kk
    (``kk*d = q*s + a``) from output ``i0 + y - q`` where ``h = h0 + y*s``.

    Returns:
        list over a of (h0, count, i0, [(kk, q), ...] in increasing kk).
    """
    phases = []
    for a in range(s):
        h0 = (a - p) % s
        taps = [(kk, (kk * d - a) // s) for kk in range(k) if (kk * d) % s == a]
        phases.append((h0, len(range(h0, size, s)), (h0 + p - a) // s, taps))
    return phases


def _grad_input(g, weight, x_shape, geom: ConvGeometry, bias=None) -> np.ndarray:
    """dL/dx of a cross-correlation: one stride-1 correlation of g per stride phase.

    ``bias`` (C_in,), if given, is added to every pixel (a transposed convolution's bias).

    Shape:
        g: (N, C_out, H_out, W_out), weight: (C_out, C_in/groups, KH, KW) ->
        dx: x_shape = (N, C_in, H, W).
    """
    n, c_in, h, w = x_shape
    c_out, c_g, kh, kw = weight.shape
    grp = geom.groups
    h_out, w_out = g.shape[2:]
    (pt, _), (pl, _) = geom.padding
    ph = _axis_phases(kh, geom.dilation[0], geom.stride[0], pt, h)
    pw = _axis_phases(kw, geom.dilation[1], geom.stride[1], pl, w)
    # g padded so every tap's read stays inside: top/left by the largest q
    big_qh = max(q for *_, taps in ph for _, q in taps)
    big_qw = max(q for *_, taps in pw for _, q in taps)
    bot = max([i0 + cnt - taps[0][1] for _, cnt, i0, taps in ph if taps] + [h_out]) - h_out
    right = max([j0 + cnt - taps[0][1] for _, cnt, j0, taps in pw if taps] + [w_out]) - w_out
    pads = ((big_qh, bot), (big_qw, right))
    # (C_out, C_in/G, KH, KW) -> (G, C_in/G, C_out/G, KH, KW) -> (C_in, C_out/G, KH, KW)
    wt = weight.astype(g.dtype, copy=False).reshape(grp, c_out // grp, c_g, kh, kw)
    wt = wt.transpose(0, 2, 1, 3, 4).reshape(c_in, c_out // grp, kh, kw)
    full = all(t for *_, t in ph) and all(t for *_, t in pw)
    dx = None if geom.stride == (1, 1) else np.empty(x_shape, dtype=g.dtype)
    if dx is not None and not full:  # pixels no tap reaches: zero, or the bias
        dx[...] = 0 if bias is None else bias.astype(g.dtype, copy=False).reshape(-1, 1, 1)
    for h0, nh, i0, taps_h in ph:
        for w0, nw, j0, taps_w in pw:
            if not (taps_h and taps_w and nh and nw):
                continue  # no tap reaches these pixels: their gradient is zero
            kk_h, q_h = zip(*taps_h[::-1], strict=True)  # flipped: reads go down as q goes up
            kk_w, q_w = zip(*taps_w[::-1], strict=True)
            step_h = q_h[0] - q_h[1] if len(q_h) > 1 else 1
            step_w = q_w[0] - q_w[1] if len(q_w) > 1 else 1
            w_sub = wt[:, :, list(kk_h)][:, :, :, list(kk_w)]  # (C_in, C_out/G, T_h, T_w)
            # stride 1: the one phase is all of dx; otherwise write into the phase's pixels
            part = None if dx is None else dx[:, :, h0 :: geom.stride[0], w0 :: geom.stride[1]]
            part = _corr(
                g,
                w_sub,
                bias,
                pads,
                (1, 1),
                (step_h, step_w),
                grp,
                (nh, nw),
                (i0 + big_qh - q_h[0], j0 + big_qw - q_w[0]),
                slot=PAD_G,
                out=part,
            )
            if dx is None:
                return part
    if dx is None:  # unreachable: at stride 1 the single phase returned above (empty inputs never get here)
        raise RuntimeError("conv2d input gradient: no stride phase was computed")
    return dx


def _grad_weight(x, g, w_shape, geom: ConvGeometry) -> np.ndarray:
    """dL/dW of a cross-correlation: sum over chunks of cols(x) @ g^T.

    Shape:
        x: (N, C_in, H, W), g: (N, C_out, H_out, W_out) -> (C_out, C_in/groups, KH, KW).
    """
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = w_shape
    grp, c_og = geom.groups, c_out // geom.groups
    h_out, w_out = g.shape[2:]
    view = _windows(x, geom.padding, (kh, kw), geom.stride, geom.dilation, (h_out, w_out))
    w_row = view.shape[5]
    dtype, length, rows = x.dtype, h_out * w_row, c_g * kh * kw
    # scratch -> (C_out, N, H_out, W_row), filled chunk by chunk (in the chunk's thread)
    g_chan_major = workspace(G_CHANNEL_MAJOR, c_out * n * length, dtype)
    g_chan_major = g_chan_major.reshape(c_out, n, h_out, w_row)
    g_grouped = g_chan_major.reshape(grp, c_og, n * length)  # (C_out, N, H_out, W_row) -> (G, C_out/G, N*L)

    def chunk(n0, n1):
        nc = n1 - n0
        g_chan_major[:, n0:n1, :, w_out:] = 0  # wrap columns of flat windows contribute nothing
        # (Nc, C_out, ..) -> (C_out, Nc, ..)
        g_chan_major[:, n0:n1, :, :w_out] = g[n0:n1].transpose(1, 0, 2, 3)
        # scratch -> (C_in, KH, KW, Nc, H_out, W_row); (Nc, C_in, KH, KW, ..) view -> same order
        cols = workspace(COLS, c_in * kh * kw * nc * length, dtype)
        cols = cols.reshape(c_in, kh, kw, nc, h_out, w_row)
        np.copyto(cols, view[n0:n1].transpose(1, 2, 3, 0, 4, 5))
        # (G, C_in/G*KH*KW, Nc*L) @ (G, Nc*L, C_out/G) -> (G, C_in/G*KH*KW, C_out/G)
        return np.matmul(
            cols.reshape(grp, rows, nc * length),
            g_grouped[:, :, n0 * length : n1 * length].transpose(0, 2, 1),
        )

    flops = 2.0 * c_out * rows * n * length
    parts = run_chunks(n, *_chunk(c_in * kh * kw * length * dtype.itemsize, n, flops), chunk)
    acc = parts[0]
    for part in parts[1:]:
        acc += part
    # (G, C_in/G*KH*KW, C_out/G) -> (G, C_out/G, C_in/G*KH*KW) -> (C_out, C_in/G, KH, KW)
    return np.ascontiguousarray(acc.transpose(0, 2, 1)).reshape(w_shape)


def conv2d_forward(x, weight, bias, stride: Pair, padding: Pads, dilation: Pair, groups: int):
    """2-D cross-correlation (PyTorch ``conv2d``), asymmetric zero padding allowed.

    Args:
        x (ndarray): input, float32 or float64.
        weight (ndarray): filters.
        bias (ndarray or None): one value per output channel.
        stride (tuple[int, int]): (sh, sw).
        padding (((int, int), (int, int))): ((top, bottom), (left, right)).
        dilation (tuple[int, int]): (dh, dw).
        groups (int): channel groups (C_in and C_out divisible by it).

    Shape:
        x: (N, C_in, H, W); weight: (C_out, C_in/groups, KH, KW); bias: (C_out,)
        -> out: (N, C_out, H_out, W_out),
        ``H_out = floor((H + top + bottom - dh*(KH-1) - 1) / sh) + 1`` (same for W).

    Returns:
        (out, saved): ``out`` has x's dtype; ``saved`` is a :class:`ConvSaved`.
    """
    geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    out = _corr(x, weight, bias, geom.padding, geom.stride, geom.dilation, geom.groups, geom.out_size)
    return out, ConvSaved(x, weight, bias is not None, geom)


def conv2d_backward(
    grad_out, saved: ConvSaved, need_input: bool = True, need_weight: bool = True, need_bias: bool = True
):
    """Gradients of :func:`conv2d_forward`.

    Args:
        grad_out (ndarray): dL/dout.
        saved (ConvSaved): from the forward call.
        need_input, need_weight, need_bias (bool, default True): which to compute.

    Shape:
        grad_out: (N, C_out, H_out, W_out) -> grad_input (N, C_in, H, W),
        grad_weight (C_out, C_in/groups, KH, KW), grad_bias (C_out,).

    Returns:
        (grad_input, grad_weight, grad_bias), each None when not needed (or no bias).
    """
    g = np.asarray(grad_out, dtype=saved.x.dtype)
    gx = _grad_input(g, saved.weight, saved.x.shape, saved.geom) if need_input else None
    gw = _grad_weight(saved.x, g, saved.weight.shape, saved.geom) if need_weight else None
    gb = channel_sums(g) if (need_bias and saved.has_bias) else None
    return gx, gw, gb


def conv_transpose2d_forward(
    x, weight, bias, stride: Pair, padding: Pads, output_padding: Pair, dilation: Pair, groups: int
):
    """2-D transposed convolution (PyTorch ``conv_transpose2d``).

    It is the input gradient of ``conv2d(., weight, stride, padding, dilation,
    groups)`` evaluated at ``x``, plus bias.

    Args:
        x (ndarray): input, float32 or float64.
        weight (ndarray): filters, laid out as for the matching conv2d.
        bias (ndarray or None): one value per output channel.
        stride, output_padding, dilation (tuple[int, int]): per axis; ``output_padding``
            is added at the bottom/right.
        padding (((int, int), (int, int))): ((top, bottom), (left, right)), symmetric
            (top == bottom, left == right) as in PyTorch.
        groups (int): channel groups.

    Shape:
        x: (N, C_in, H, W); weight: (C_in, C_out/groups, KH, KW); bias: (C_out,)
        -> out: (N, C_out, H_out, W_out),
        ``H_out = (H - 1)*sh - 2*ph + dh*(KH - 1) + oph + 1`` (same for W).

    Returns:
        (out, saved): ``out`` has x's dtype; ``saved`` is a :class:`ConvSaved`.
    """
    n = x.shape[0]
    c_og = weight.shape[1]
    tgeom = ConvGeometry.transpose(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, groups
    )
    geom = tgeom.as_conv()
    # the bias is added inside the chunk loops, while each chunk is in cache
    out = _grad_input(np.asarray(x), weight, (n, c_og * groups, *tgeom.out_size), geom, bias)
    return out, ConvSaved(x, weight, bias is not None, geom)


def conv_transpose2d_backward(
    grad_out, saved: ConvSaved, need_input: bool = True, need_weight: bool = True, need_bias: bool = True
):
    """Gradients of :func:`conv_transpose2d_forward`.

    ``grad_input`` is the matching conv2d applied to ``grad_out``; ``grad_weight``
    is the conv2d weight gradient with input ``grad_out`` and output gradient ``x``.

    Shape:
        grad_out: (N, C_out, H_out, W_out) -> grad_input (N, C_in, H, W),
        grad_weight (C_in, C_out/groups, KH, KW), grad_bias (C_out,).

    Returns:
        (grad_input, grad_weight, grad_bias), each None when not needed (or no bias).
    """
    x, geom = saved.x, saved.geom
    g = np.asarray(grad_out, dtype=x.dtype)
    gx = (
        _corr(g, saved.weight, None, geom.padding, geom.stride, geom.dilation, geom.groups, x.shape[2:])
        if need_input
        else None
    )
    gw = _grad_weight(g, np.asarray(x), saved.weight.shape, geom) if need_weight else None
    gb = channel_sums(g) if (need_bias and saved.has_bias) else None
    return gx, gw, gb
