"""2-D convolution and transposed convolution: NumPy forward and backward kernels.

Arrays in, arrays out (no Tensor). Every product is one BLAS GEMM on
channel-major flat columns built by :mod:`convscope.kernels.window`:

* forward:      ``out = W (C_out, C_in*KH*KW) @ cols(x)``;
* weight grad:  ``dW^T = cols(x) @ g^T`` (columns are recomputed, not saved);
* input grad:   for each stride phase (a, b) of the padded input, a stride-1
  correlation of the zero-padded ``g`` with the taps of that phase, i.e.
  ``dx[phase] = W_phase^T @ cols(g)`` -- no col2im scatter-adds at all.

A transposed convolution is the input-gradient of a convolution, so
``conv_transpose2d_forward`` reuses the input-grad path and its backward uses
the forward and weight-grad paths.

Memory: the column matrix of a whole batch can be large (9x the input for a
3x3 kernel), so each product runs over chunks of whole images whose columns
fit ``min(COLUMN_BUDGET_BYTES, CACHE_BLOCK_BYTES)`` -- small enough to stay in
L2 cache between the copy, the GEMM and the read-back, which is also what
makes it fast. Columns live in reusable per-thread scratch buffers (fresh
large arrays cost page faults that take as long as the copy itself), and
nothing bigger than the input is kept for backward.

Caveat: wrap-around columns read real pixels and are later multiplied by
zero, so a NaN/inf in a pixel that no window touches can still reach dW.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import conv_output_size, conv_transpose_output_size
from .window import gather_rows, gather_taps, pad2d, phase_image, phase_taps, workspace

__all__ = ["conv2d_forward", "conv2d_backward", "conv_transpose2d_forward",
           "conv_transpose2d_backward", "ConvSaved", "COLUMN_BUDGET_BYTES", "CACHE_BLOCK_BYTES"]

#: Hard cap on the column matrix (bytes) built at once; bigger batches are chunked.
COLUMN_BUDGET_BYTES = 256 * 2**20
#: Preferred chunk size: columns and GEMM result of a chunk stay in L2 cache
#: while they are reused (measured here: 1.6-1.8x faster than whole-batch
#: GEMMs on 16-channel layers, never slower). Chunks are whole images.
CACHE_BLOCK_BYTES = 2**20

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]


@dataclass(frozen=True)
class _Geom:
    """Convolution geometry, seen from the convolution (not the transpose)."""
    stride: Pair
    padding: Pads  # ((top, bottom), (left, right))
    dilation: Pair
    groups: int


@dataclass
class ConvSaved:
    """What backward needs: the inputs (by reference) and the geometry.

    Columns are recomputed in backward from ``x``: that costs one copy and
    keeps the memory per layer at the size of its input, like PyTorch.
    """
    x: np.ndarray
    weight: np.ndarray
    has_bias: bool
    geom: _Geom
    out_hw: Pair  # (H, W) of the transposed conv's output (unused for conv2d)


def _chunk(per_image_bytes: int, n: int) -> int:
    """Images per chunk: columns fit the cache block and the budget (>= 1 image)."""
    limit = min(COLUMN_BUDGET_BYTES, CACHE_BLOCK_BYTES)
    return max(1, min(n, limit // max(per_image_bytes, 1)))


def _phase_pads(x_shape, geom: _Geom):
    """Padded sizes and the phase-image geometry of an input."""
    n, c, h, w = x_shape
    (pt, pb), (pl, pr) = geom.padding
    sh, sw = geom.stride
    return -(-(h + pt + pb) // sh), -(-(w + pl + pr) // sw)


def _conv(x, weight, bias, geom: _Geom, out_hw: Pair) -> np.ndarray:
    """Cross-correlation of x with weight at output size out_hw (the core forward).

    Shape:
        x: (N, C_in, H, W), weight: (C_out, C_in/groups, KH, KW) ->
        (N, C_out, H_out, W_out) with (H_out, W_out) = out_hw.
    """
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = weight.shape
    g = geom.groups
    h_out, w_out = out_hw
    dtype = x.dtype
    q, flat = phase_image(x, geom.padding, geom.stride, slot="q")
    hq, wq = q.shape[3:]
    taps = phase_taps((kh, kw), geom.stride, geom.dilation)
    length = h_out * wq  # columns per image (W_out real + wrap columns per row)
    # (C_out, C_in/G, KH, KW) -> (G, C_out/G, C_in/G*KH*KW)
    w_mat = weight.astype(dtype, copy=False).reshape(g, c_out // g, c_g * kh * kw)
    out = np.empty((n, c_out, h_out, w_out), dtype=dtype)
    step = _chunk(c_in * kh * kw * length * dtype.itemsize, n)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols = gather_taps(flat, q.shape, taps, h_out, n0, n1,
                           workspace("cols", c_in * kh * kw * (n1 - n0) * length, dtype))
        res = workspace("res", c_out * (n1 - n0) * length, dtype)
        # (C_in, KH*KW, Nc, L) -> (G, C_in/G*KH*KW, Nc*L); out: (G, C_out/G, Nc*L)
        np.matmul(w_mat, cols.reshape(g, c_g * kh * kw, (n1 - n0) * length),
                  out=res.reshape(g, c_out // g, (n1 - n0) * length))
        # (C_out, Nc, H_out, Wq) -> crop wrap columns -> (Nc, C_out, H_out, W_out)
        res4 = res.reshape(c_out, n1 - n0, h_out, wq)[..., :w_out].transpose(1, 0, 2, 3)
        if bias is None:
            np.copyto(out[n0:n1], res4)
        else:
            np.add(res4, bias.astype(dtype, copy=False).reshape(c_out, 1, 1), out=out[n0:n1])
    return out


def _grad_cm(g: np.ndarray, wq: int, slot: str) -> np.ndarray:
    """Channel-major copy of g with zero wrap columns, matching the flat columns.

    Shape:
        g: (N, C_out, H_out, W_out) -> (C_out, N, H_out, Wq), zeros at w >= W_out.
    """
    n, c_out, h_out, w_out = g.shape
    buf = workspace(slot, c_out * n * h_out * wq, g.dtype).reshape(c_out, n, h_out, wq)
    buf[..., w_out:] = 0
    buf[..., :w_out] = g.transpose(1, 0, 2, 3)  # (N, C_out, ...) -> (C_out, N, ...)
    return buf


def _conv_grad_weight(x, g, w_shape, geom: _Geom) -> np.ndarray:
    """dL/dW of a cross-correlation, given its input x and output gradient g.

    Shape:
        x: (N, C_in, H, W), g: (N, C_out, H_out, W_out) -> (C_out, C_in/groups, KH, KW).
    """
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = w_shape
    grp = geom.groups
    h_out = g.shape[2]
    dtype = x.dtype
    q, flat = phase_image(x, geom.padding, geom.stride, slot="q")
    wq = q.shape[4]
    taps = phase_taps((kh, kw), geom.stride, geom.dilation)
    length = h_out * wq
    g_cm = _grad_cm(g, wq, "gcm").reshape(grp, c_out // grp, n * length)  # (G, C_out/G, N*L)
    acc = np.zeros((grp, c_g * kh * kw, c_out // grp), dtype=dtype)
    step = _chunk(c_in * kh * kw * length * dtype.itemsize, n)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols = gather_taps(flat, q.shape, taps, h_out, n0, n1,
                           workspace("cols", c_in * kh * kw * (n1 - n0) * length, dtype))
        # (C_in, KH*KW, Nc, L) -> (G, C_in/G*KH*KW, Nc*L); dW^T: (G, C_in/G*KH*KW, C_out/G)
        part = np.matmul(cols.reshape(grp, c_g * kh * kw, (n1 - n0) * length),
                         g_cm[:, :, n0 * length:n1 * length].transpose(0, 2, 1))
        acc += part
    # (G, C_in/G, KH, KW, C_out/G) -> (G, C_out/G, C_in/G, KH, KW) -> (C_out, C_in/G, KH, KW)
    gw = acc.reshape(grp, c_g, kh, kw, c_out // grp).transpose(0, 4, 1, 2, 3)
    return np.ascontiguousarray(gw).reshape(w_shape)


def _conv_grad_input(g, weight, x_shape, geom: _Geom) -> np.ndarray:
    """dL/dx of a cross-correlation: per stride phase, a stride-1 correlation of g.

    Tap (kh, kw) reads phase (a, b) of the padded input at offset (qh, qw), so
    ``dx_phase[y, x] = sum_taps W_tap^T g[y - qh, x - qw]``: g is zero-padded by
    (Qh, Qw) = the largest offsets and read at ``(Qh - qh, Qw - qw)``.

    Shape:
        g: (N, C_out, H_out, W_out), weight: (C_out, C_in/groups, KH, KW) ->
        dx: x_shape = (N, C_in, H, W).
    """
    n, c_in, h, w = x_shape
    c_out, c_g, kh, kw = weight.shape
    grp = geom.groups
    (pt, pb), (pl, pr) = geom.padding
    sh, sw = geom.stride
    h_out, w_out = g.shape[2:]
    dtype = g.dtype
    hq, wq = _phase_pads(x_shape, geom)
    taps = phase_taps((kh, kw), geom.stride, geom.dilation)
    big_qh, big_qw = max(t[1] for t in taps), max(t[2] for t in taps)
    # g zero-padded to (C_out, N, 1, Hq + Qh, Wq + Qw): rows/cols outside g read 0
    gq, gflat = phase_image(g, ((big_qh, hq - h_out), (big_qw, wq - w_out)), (1, 1), slot="gpad")
    wg = gq.shape[4]
    length = hq * wg  # columns per image of one phase
    # (C_out, C_in/G, KH, KW) -> (G, C_out/G, C_in/G, KH*KW)
    w4 = weight.astype(dtype, copy=False).reshape(grp, c_out // grp, c_g, kh * kw)
    phases = [[t for t in taps if t[0] == p] for p in range(sh * sw)]
    dx = (np.empty if all(phases) else np.zeros)(x_shape, dtype=dtype)
    for p, ptaps in enumerate(phases):
        if not ptaps:
            continue  # no tap reads this phase: its gradient stays zero
        a, b = divmod(p, sw)
        h0, w0 = (a - pt) % sh, (b - pl) % sw  # first input row/col of this phase
        i0, j0 = (h0 + pt - a) // sh, (w0 + pl - b) // sw
        nh, nw = len(range(h0, h, sh)), len(range(w0, w, sw))
        if not (nh and nw):
            continue
        t_idx = [t[3] for t in ptaps]
        reads = [(0, big_qh - qh, big_qw - qw) for _, qh, qw, _ in ptaps]
        k = c_out // grp * len(ptaps)
        # (G, C_out/G, C_in/G, T) -> (G, C_in/G, C_out/G, T) -> (G, C_in/G, C_out/G*T)
        w_ph = np.ascontiguousarray(w4[..., t_idx].transpose(0, 2, 1, 3)).reshape(grp, c_g, k)
        step = _chunk(c_out * len(ptaps) * length * dtype.itemsize, n)
        for n0 in range(0, n, step):
            n1 = min(n, n0 + step)
            cols = gather_taps(gflat, gq.shape, reads, hq, n0, n1,
                               workspace("cols", c_out * len(ptaps) * (n1 - n0) * length, dtype))
            res = workspace("res", c_in * (n1 - n0) * length, dtype)
            # (C_out, T, Nc, L) -> (G, C_out/G*T, Nc*L); res: (G, C_in/G, Nc*L)
            np.matmul(w_ph, cols.reshape(grp, k, (n1 - n0) * length),
                      out=res.reshape(grp, c_g, (n1 - n0) * length))
            # (C_in, Nc, Hq, Wg) -> rows/cols of real pixels -> (Nc, C_in, nh, nw)
            src = res.reshape(c_in, n1 - n0, hq, wg)[:, :, i0:i0 + nh, j0:j0 + nw]
            dx[n0:n1, :, h0::sh, w0::sw] = src.transpose(1, 0, 2, 3)
    return dx


def _sum_bias(g: np.ndarray) -> np.ndarray:
    """Bias gradient: (N, C_out, H_out, W_out) -> (C_out,)."""
    n, c = g.shape[:2]
    # (N, C_out, H_out, W_out) -> (N, C_out, H_out*W_out): sum the contiguous axis first
    return g.reshape(n, c, -1).sum(axis=2).sum(axis=0)


# ---------------------------------------------------------------------------
# Row path (stride 1): im2col over the KW horizontal shifts only; the KH
# vertical shifts are row offsets of the GEMM result. The copy is KW (not
# KH*KW) times the image and the GEMM is (KH*C_out, C_in*KW) @ (C_in*KW, M):
# for 16-channel 3x3 layers that shape runs ~3x faster in BLAS than the
# classic (C_out, C_in*KH*KW) @ (C_in*KH*KW, M).
# ---------------------------------------------------------------------------

def _rows_conv(x, weight, bias, pads: Pads, dilation: Pair, groups: int, out_hw: Pair,
               offset: Pair = (0, 0)) -> np.ndarray:
    """Stride-1 cross-correlation with an output window.

    ``out[n, co, i, j] = sum w[co, c, kh, kw] * xp[n, c, i + oh + kh*dh, j + ow + kw*dw]``
    where ``xp`` is ``x`` zero-padded by ``pads`` and ``(oh, ow) = offset``.

    Shape:
        x: (N, C_in, H, W), weight: (C_out, C_in/groups, KH, KW) ->
        (N, C_out, H_out, W_out) with (H_out, W_out) = out_hw.
    """
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = weight.shape
    grp, c_og = groups, c_out // groups
    (h_out, w_out), (oh, ow), (dh, dw) = out_hw, offset, dilation
    dtype = x.dtype
    q, flat = phase_image(x, pads, (1, 1), slot="q")
    wi = q.shape[4]
    rows = h_out + (kh - 1) * dh  # image rows that feed the output window
    length = rows * wi
    # (C_out, C_in/G, KH, KW) -> (G, KH, C_out/G, C_in/G, KW) -> (G, KH*C_out/G, C_in/G*KW)
    w3 = weight.astype(dtype, copy=False).reshape(grp, c_og, c_g, kh, kw).transpose(0, 3, 1, 2, 4)
    w3 = np.ascontiguousarray(w3).reshape(grp, kh * c_og, c_g * kw)
    out = np.empty((n, c_out, h_out, w_out), dtype=dtype)
    b5 = None if bias is None else bias.astype(dtype, copy=False).reshape(grp, c_og, 1, 1, 1)
    step = _chunk(max(c_in * kw, kh * c_out) * length * dtype.itemsize, n)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        m = (n1 - n0) * length
        cols = gather_rows(flat, q.shape, kw, dw, oh, rows, n0, n1,
                           workspace("cols", c_in * kw * m, dtype))
        y = workspace("res", kh * c_out * m, dtype)
        # (C_in, KW, Nc, L) -> (G, C_in/G*KW, Nc*L); y: (G, KH*C_out/G, Nc*L)
        np.matmul(w3, cols.reshape(grp, c_g * kw, m), out=y.reshape(grp, kh * c_og, m))
        y6 = y.reshape(grp, kh, c_og, n1 - n0, rows, wi)  # (G, KH, C_out/G, Nc, rows, Wi)
        # (Nc, C_out, H_out, W_out) -> (G, C_out/G, Nc, H_out, W_out), a view of out
        dst = out[n0:n1].reshape(n1 - n0, grp, c_og, h_out, w_out).transpose(1, 2, 0, 3, 4)
        shifted = [y6[:, k, :, :, k * dh:k * dh + h_out, ow:ow + w_out] for k in range(kh)]
        if kh == 1:
            np.copyto(dst, shifted[0])
        else:
            np.add(shifted[0], shifted[1], out=dst)
            for part in shifted[2:]:
                dst += part
        if b5 is not None:
            dst += b5
    return out


def _rows_grad_input(g, weight, x_shape, geom: _Geom) -> np.ndarray:
    """dL/dx of a stride-1 correlation: correlate zero-padded g with the flipped kernel.

    Shape:
        g: (N, C_out, H_out, W_out), weight: (C_out, C_in/groups, KH, KW) -> x_shape.
    """
    c_out, c_g, kh, kw = weight.shape
    grp = geom.groups
    (pt, pb), (pl, pr) = geom.padding
    (dh, dw), (h, w) = geom.dilation, x_shape[2:]
    h_out, w_out = g.shape[2:]
    big_qh, big_qw = dh * (kh - 1), dw * (kw - 1)
    # (C_out, C_in/G, KH, KW) -> (G, C_in/G, C_out/G, KH, KW) flipped -> (C_in, C_out/G, KH, KW)
    wf = weight.reshape(grp, c_out // grp, c_g, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    wf = wf.reshape(grp * c_g, c_out // grp, kh, kw)
    pads = ((big_qh, h + pt + pb - h_out), (big_qw, w + pl + pr - w_out))
    return _rows_conv(g, wf, None, pads, geom.dilation, grp, (h, w), (pt, pl))


def _rows_grad_weight(x, g, w_shape, geom: _Geom) -> np.ndarray:
    """dL/dW of a stride-1 correlation: KH GEMMs of row-shifted columns with g.

    Shape:
        x: (N, C_in, H, W), g: (N, C_out, H_out, W_out) -> (C_out, C_in/groups, KH, KW).
    """
    n, c_in = x.shape[:2]
    c_out, c_g, kh, kw = w_shape
    grp, c_og = geom.groups, c_out // geom.groups
    dh, dw = geom.dilation
    h_out, w_out = g.shape[2:]
    dtype = x.dtype
    q, flat = phase_image(x, geom.padding, (1, 1), slot="q")
    hi, wi = q.shape[3:]
    hw = hi * wi
    # g laid on the padded grid: (C_out, N, Hi, Wi), zero outside [:H_out, :W_out]
    gf = workspace("gcm", c_out * n * hw, dtype).reshape(c_out, n, hi, wi)
    gf[:, :, h_out:] = 0
    gf[:, :, :h_out, w_out:] = 0
    gf[:, :, :h_out, :w_out] = g.transpose(1, 0, 2, 3)  # (N, C_out, ..) -> (C_out, N, ..)
    gf = gf.reshape(grp, c_og, n * hw)  # (G, C_out/G, N*Hi*Wi)
    acc = np.zeros((grp, kh, c_g * kw, c_og), dtype=dtype)
    step = _chunk(c_in * kw * hw * dtype.itemsize, n)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        m = (n1 - n0) * hw
        cols = gather_rows(flat, q.shape, kw, dw, 0, hi, n0, n1,
                           workspace("cols", c_in * kw * m, dtype))
        cols = cols.reshape(grp, c_g * kw, m)  # (C_in, KW, Nc, Hi*Wi) -> (G, C_in/G*KW, M)
        for k in range(kh):
            shift = k * dh * wi  # kernel row k reads image row i + k*dh
            # (G, C_in/G*KW, M - shift) @ (G, M - shift, C_out/G) -> (G, C_in/G*KW, C_out/G)
            acc[:, k] += np.matmul(cols[:, :, shift:],
                                   gf[:, :, n0 * hw:n0 * hw + m - shift].transpose(0, 2, 1))
    # (G, KH, C_in/G, KW, C_out/G) -> (G, C_out/G, C_in/G, KH, KW) -> (C_out, C_in/G, KH, KW)
    gw = acc.reshape(grp, kh, c_g, kw, c_og).transpose(0, 4, 2, 1, 3)
    return np.ascontiguousarray(gw).reshape(w_shape)


# ---------------------------------------------------------------------------
# Dispatch. Per output pixel, the tap path moves ~C_in*KH*KW column values; the
# row path ~C_in*KW columns plus ~2*KH*C_out values of GEMM result and shifted
# sums. Measured (chunked, 1 thread): rows win clearly when they move less
# (dx of LeNet's conv2: 2.3 vs 4.5 ms), tie on equal channels, lose otherwise.
# ---------------------------------------------------------------------------

_NO_PAD = ((0, 0), (0, 0))


def _prefer_rows(c_in: int, c_out: int, kh: int, kw: int) -> bool:
    """Row path for a stride-1 correlation with c_in -> c_out channels?"""
    return c_in * kw + 2 * kh * c_out < c_in * kh * kw


def _pointwise_input(x, geom: _Geom, out_hw: Pair) -> np.ndarray:
    """1x1 conv input: the padded pixels the kernel lands on (a view when unpadded).

    Shape:
        (N, C_in, H, W) -> (N, C_in, H_out, W_out).
    """
    (sh, sw), (h_out, w_out) = geom.stride, out_hw
    return pad2d(x, geom.padding)[:, :, ::sh, ::sw][:, :, :h_out, :w_out]


def _forward(x, weight, bias, geom: _Geom, out_hw: Pair) -> np.ndarray:
    """Dispatching cross-correlation at output size out_hw (see module docstring)."""
    c_out, c_g, kh, kw = weight.shape
    if (kh, kw) == (1, 1):  # a plain GEMM on the (strided) pixels
        xs = _pointwise_input(x, geom, out_hw)
        return _rows_conv(xs, weight, bias, _NO_PAD, (1, 1), geom.groups, out_hw)
    if geom.stride == (1, 1) and _prefer_rows(c_g, c_out // geom.groups, kh, kw):
        return _rows_conv(x, weight, bias, geom.padding, geom.dilation, geom.groups, out_hw)
    return _conv(x, weight, bias, geom, out_hw)


def _grad_input(g, weight, x_shape, geom: _Geom) -> np.ndarray:
    """Dispatching dL/dx: (N, C_out, H_out, W_out) -> x_shape."""
    c_out, c_g, kh, kw = weight.shape
    if (kh, kw) == (1, 1):
        n, c, h, w = x_shape
        (pt, pb), (pl, pr) = geom.padding
        (sh, sw), (h_out, w_out) = geom.stride, g.shape[2:]
        d_sub = _rows_grad_input(g, weight, (n, c, h_out, w_out), _Geom((1, 1), _NO_PAD, (1, 1), geom.groups))
        if geom.stride == (1, 1) and geom.padding == _NO_PAD:
            return d_sub
        dxp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=g.dtype)
        dxp[:, :, ::sh, ::sw][:, :, :h_out, :w_out] = d_sub
        return np.ascontiguousarray(dxp[:, :, pt:pt + h, pl:pl + w])
    if geom.stride == (1, 1) and _prefer_rows(c_out // geom.groups, c_g, kh, kw):
        return _rows_grad_input(g, weight, x_shape, geom)
    return _conv_grad_input(g, weight, x_shape, geom)


def _grad_weight(x, g, w_shape, geom: _Geom) -> np.ndarray:
    """Dispatching dL/dW: -> (C_out, C_in/groups, KH, KW)."""
    if w_shape[2:] == (1, 1):  # the pixels are the columns: no copy at all
        xs = _pointwise_input(x, geom, g.shape[2:])
        return _rows_grad_weight(xs, g, w_shape, _Geom((1, 1), _NO_PAD, (1, 1), geom.groups))
    return _conv_grad_weight(x, g, w_shape, geom)


def conv2d_forward(x, weight, bias, stride: Pair, padding: Pads, dilation: Pair,
                   groups: int):
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
    geom = _Geom(tuple(stride), tuple(map(tuple, padding)), tuple(dilation), int(groups))
    (pt, pb), (pl, pr) = geom.padding
    h_out = conv_output_size(x.shape[2], weight.shape[2], stride[0], pt, dilation[0], padding_after=pb)
    w_out = conv_output_size(x.shape[3], weight.shape[3], stride[1], pl, dilation[1], padding_after=pr)
    out = _forward(x, weight, bias, geom, (h_out, w_out))
    return out, ConvSaved(x, weight, bias is not None, geom, (h_out, w_out))


def conv2d_backward(grad_out, saved: ConvSaved, need_input: bool = True,
                    need_weight: bool = True, need_bias: bool = True):
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
    g = np.ascontiguousarray(grad_out, dtype=saved.x.dtype)
    gx = _grad_input(g, saved.weight, saved.x.shape, saved.geom) if need_input else None
    gw = _grad_weight(saved.x, g, saved.weight.shape, saved.geom) if need_weight else None
    gb = _sum_bias(g) if (need_bias and saved.has_bias) else None
    return gx, gw, gb


def conv_transpose2d_forward(x, weight, bias, stride: Pair, padding: Pair,
                             output_padding: Pair, dilation: Pair, groups: int):
    """2-D transposed convolution (PyTorch ``conv_transpose2d``).

    It is the input-gradient of ``conv2d(., weight, stride, padding, dilation,
    groups)`` evaluated at ``x``, plus bias.

    Args:
        x (ndarray): input, float32 or float64.
        weight (ndarray): filters, laid out as for the matching conv2d.
        bias (ndarray or None): one value per output channel.
        stride, padding, output_padding, dilation (tuple[int, int]): per axis;
            ``padding`` is symmetric, ``output_padding`` is added at the bottom/right.
        groups (int): channel groups.

    Shape:
        x: (N, C_in, H, W); weight: (C_in, C_out/groups, KH, KW); bias: (C_out,)
        -> out: (N, C_out, H_out, W_out),
        ``H_out = (H - 1)*sh - 2*ph + dh*(KH - 1) + oph + 1`` (same for W).

    Returns:
        (out, saved): ``out`` has x's dtype; ``saved`` is a :class:`ConvSaved`.
    """
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    n, _, h, w = x.shape
    _, c_og, kh, kw = weight.shape
    h_out = conv_transpose_output_size(h, kh, sh, ph, dh, output_padding[0])
    w_out = conv_transpose_output_size(w, kw, sw, pw, dw, output_padding[1])
    geom = _Geom((sh, sw), ((ph, ph), (pw, pw)), (dh, dw), int(groups))
    out = _grad_input(np.ascontiguousarray(x), weight, (n, c_og * groups, h_out, w_out), geom)
    if bias is not None:
        out += bias.astype(out.dtype, copy=False).reshape(-1, 1, 1)
    return out, ConvSaved(x, weight, bias is not None, geom, (h_out, w_out))


def conv_transpose2d_backward(grad_out, saved: ConvSaved, need_input: bool = True,
                              need_weight: bool = True, need_bias: bool = True):
    """Gradients of :func:`conv_transpose2d_forward`.

    ``grad_input`` is the matching conv2d applied to ``grad_out``; ``grad_weight``
    is the conv2d weight gradient with input ``grad_out`` and output-gradient ``x``.

    Shape:
        grad_out: (N, C_out, H_out, W_out) -> grad_input (N, C_in, H, W),
        grad_weight (C_in, C_out/groups, KH, KW), grad_bias (C_out,).

    Returns:
        (grad_input, grad_weight, grad_bias), each None when not needed (or no bias).
    """
    x = saved.x
    g = np.ascontiguousarray(grad_out, dtype=x.dtype)
    gx = _forward(g, saved.weight, None, saved.geom, x.shape[2:]) if need_input else None
    gw = _grad_weight(g, np.ascontiguousarray(x), saved.weight.shape, saved.geom) if need_weight else None
    gb = _sum_bias(g) if (need_bias and saved.has_bias) else None
    return gx, gw, gb
