"""2-D convolution on the native (compiled C) backend: same functions and contracts as
:mod:`convscope.kernels.conv`, which computes exactly the same; read that (and the
reference backend) first.

The C code (``conv_tiles.c`` and one file per pass) runs direct convolutions with
register blocking over zero-padded "flat planes" of each image (no im2col matrix). Here the
batch is split into chunks of images, which ``conv_parallel.c`` runs on the native thread
pool (``threads.c``) in one call, with the GIL released.

Covered: float32, groups 1, any stride, padding and dilation, any kernel size. Anything
else raises :class:`Unsupported`, and the dispatcher runs the NumPy kernel instead.
"""

from __future__ import annotations

import functools

import numpy as np

from ..conv import ConvSaved
from ..geometry import ConvGeometry
from ..parallel import PARALLEL_MIN_FLOPS, get_num_threads
from ._lib import f32ptr, i32ptr, required_library
from ._unsupported import Unsupported
from .batchnorm import channel_sums

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_forward_fused",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
]

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]

#: Chunks per thread (a descheduled thread then holds the others up less).
CHUNKS_PER_THREAD = 4
#: Bound on the padded copies a weight-gradient chunk holds at once (per thread).
WGRAD_CHUNK_BYTES = 2**20


def _check(x: np.ndarray, weight: np.ndarray, groups: int) -> None:
    if x.dtype != np.float32 or weight.dtype != np.float32:
        raise Unsupported(f"native conv covers float32 only, got {x.dtype} and {weight.dtype}")
    if groups != 1:
        raise Unsupported(f"native conv covers groups=1 only, got groups={groups}")
    if x.ndim != 4 or weight.ndim != 4:
        raise Unsupported("native conv expects 4-D input and weight")


def _geometry(x_shape, w_shape, out_hw, geom: ConvGeometry) -> np.ndarray:
    """The 16 ints the C functions read (see geom_t in conv_tiles.h)."""
    _, c_in, h, w = x_shape
    c_out, _, kh, kw = w_shape
    (pt, pb), (pl, pr) = geom.padding
    vals = (c_in, h, w, c_out, kh, kw, *geom.stride, pt, pb, pl, pr, *geom.dilation, *out_hw)
    return np.array(vals, dtype=np.int32)


def _plan(n: int, flops: float, per_image_bytes: int = 0, budget: int = 0) -> tuple[int, bool]:
    """(images per chunk, parallel?) for n images."""
    threads = get_num_threads()
    parallel = flops >= PARALLEL_MIN_FLOPS and threads > 1 and n > 1
    step = -(-n // (threads * CHUNKS_PER_THREAD)) if parallel else n
    if budget:
        step = min(step, max(1, budget // max(per_image_bytes, 1)))
    return max(1, step), parallel


def _forward(
    x,
    weight,
    bias,
    geom: ConvGeometry,
    out_hw: Pair,
    out: np.ndarray,
    scale=None,
    shift=None,
    relu=False,
    g=None,
) -> None:
    """out[:] = conv(x) + bias (then ``* scale + shift`` per channel, then ReLU), chunked over images;
    ``g``: the 16 geometry ints when the caller has them."""
    lib = required_library()
    n = x.shape[0]
    if g is None:
        g = _geometry(x.shape, weight.shape, out_hw, geom)
    flops = 2.0 * weight.size * out_hw[0] * out_hw[1] * n
    sp, tp = f32ptr(scale), f32ptr(shift)
    step, parallel = _plan(n, flops)
    packed = None
    if step < n:  # several chunks: pack the weights once for all of them
        packed = _aligned_empty(lib.cs_conv2d_forward_packed_size(i32ptr(g)))
        lib.cs_conv2d_forward_pack(f32ptr(weight), i32ptr(g), f32ptr(packed))
    pp = f32ptr(packed)
    if parallel:  # the chunks run on the native pool, in one call
        err = lib.cs_conv2d_forward_parallel(
            f32ptr(x), f32ptr(weight), f32ptr(bias), f32ptr(out), n, i32ptr(g), sp, tp, int(relu), pp,
            step, get_num_threads(),
        )  # fmt: skip
    else:
        err = lib.cs_conv2d_forward_fused(
            f32ptr(x), f32ptr(weight), f32ptr(bias), f32ptr(out), n, i32ptr(g), sp, tp, int(relu), pp
        )
    if err:
        raise MemoryError("native conv2d forward: out of memory")


def _aligned_empty(size: int) -> np.ndarray:
    """An uninitialised float32 array of ``size`` starting on a 64-byte boundary (a cache line:
    the tiles' weight-vector loads then never split one)."""
    raw = np.empty(size + 16, dtype=np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start : start + size]


def _grad_input(g, weight, x_shape, geom: ConvGeometry) -> np.ndarray:
    lib = required_library()
    n = x_shape[0]
    dx = np.empty(x_shape, dtype=np.float32)
    gg = _geometry(x_shape, weight.shape, g.shape[2:], geom)
    flops = 2.0 * weight.size * g.shape[2] * g.shape[3] * n
    step, parallel = _plan(n, flops)
    if parallel:
        err = lib.cs_conv2d_backward_input_parallel(
            f32ptr(g), f32ptr(weight), f32ptr(dx), n, i32ptr(gg), step, get_num_threads()
        )
    else:
        err = lib.cs_conv2d_backward_input(f32ptr(g), f32ptr(weight), f32ptr(dx), n, i32ptr(gg))
    if err:
        raise MemoryError("native conv2d input gradient: out of memory")
    return dx


def _grad_weight(x, g, w_shape, geom: ConvGeometry) -> np.ndarray:
    lib = required_library()
    n = x.shape[0]
    gg = _geometry(x.shape, w_shape, g.shape[2:], geom)
    flops = 2.0 * np.prod(w_shape) * g.shape[2] * g.shape[3] * n
    per_image = (x[0].size + g[0].size) * 4 * 2  # padded copies, roughly
    step, parallel = _plan(n, flops, per_image, WGRAD_CHUNK_BYTES)
    dw = np.empty(w_shape, dtype=np.float32)
    # the chunks (bounded by WGRAD_CHUNK_BYTES even on one thread) sum into their own parts,
    # added in chunk order in C: the result does not depend on which thread ran which chunk
    err = lib.cs_conv2d_backward_weight_parallel(
        f32ptr(x), f32ptr(g), f32ptr(dw), n, i32ptr(gg), step, get_num_threads() if parallel else 1
    )
    if err:
        raise MemoryError("native conv2d weight gradient: out of memory")
    return dw


def conv2d_forward(x, weight, bias, stride: Pair, padding: Pads, dilation: Pair, groups: int):
    """2-D cross-correlation; see :func:`convscope.kernels.conv.conv2d_forward` (same contract).

    Raises:
        Unsupported: not float32, groups > 1, or the library is not loaded.
    """
    _check(x, weight, groups)
    required_library()
    geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    h_out, w_out = geom.out_size
    xc = np.ascontiguousarray(x)
    wc = np.ascontiguousarray(weight)
    bc = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    out = np.empty((x.shape[0], weight.shape[0], h_out, w_out), dtype=np.float32)
    if out.size:
        _forward(xc, wc, bc, geom, (h_out, w_out), out)
    return out, ConvSaved(x, weight, bias is not None, geom)


def conv2d_forward_fused(
    x, weight, bias, stride: Pair, padding: Pads, dilation: Pair, groups: int, scale, shift, relu: bool
) -> np.ndarray:
    """``conv2d_forward``'s output with an inference epilogue in the same pass: then ``out * scale +
    shift`` per output channel (eval batch norm; both None: none), then ``max(out, 0)`` if ``relu``.

    Native only (no NumPy twin): the caller (``nn.functional._fused``) runs the separate passes
    when this raises. The result equals this backend's conv2d_forward, then
    ``batchnorm.channel_affine`` (or ``channel_affine_relu``), or ``elementwise.relu_forward``,
    bit for bit. Nothing is saved for a backward.

    Shape:
        x (N, C_in, H, W), weight (C_out, C_in, KH, KW), scale and shift (C_out,) float32
        -> (N, C_out, H_out, W_out).

    Raises:
        Unsupported: what conv2d_forward does not cover, or scale/shift not float32 (C_out,).
    """
    _check(x, weight, groups)
    required_library()
    if (scale is None) != (shift is None):
        raise Unsupported("scale and shift come together")
    if scale is not None:
        for a in (scale, shift):
            if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.shape != (weight.shape[0],):
                raise Unsupported("the epilogue's scale and shift must be float32 (C_out,) arrays")
        scale, shift = np.ascontiguousarray(scale), np.ascontiguousarray(shift)
    try:  # the same layer on the same shapes again: its geometry is known
        geom, g = _inference_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    except TypeError:  # an unhashable argument (a list): compute it
        geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
        g = _geometry(x.shape, weight.shape, geom.out_size, geom)
    h_out, w_out = geom.out_size
    bc = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    out = np.empty((x.shape[0], weight.shape[0], h_out, w_out), dtype=np.float32)
    if out.size:
        xc, wc = np.ascontiguousarray(x), np.ascontiguousarray(weight)
        _forward(xc, wc, bc, geom, (h_out, w_out), out, scale, shift, relu, g)
    return out


@functools.lru_cache(maxsize=512)
def _inference_geometry(
    x_shape, w_shape, stride, padding, dilation, groups
) -> tuple[ConvGeometry, np.ndarray]:
    """(geometry, the C functions' 16 ints) of a forward; cached, the ints read-only."""
    geom = ConvGeometry.conv(x_shape[2:], w_shape[2:], stride, padding, dilation, groups)
    g = _geometry(x_shape, w_shape, geom.out_size, geom)
    g.flags.writeable = False
    return geom, g


def conv2d_backward(
    grad_out, saved: ConvSaved, need_input: bool = True, need_weight: bool = True, need_bias: bool = True
):
    """Gradients of :func:`conv2d_forward`; see :func:`convscope.kernels.conv.conv2d_backward`.

    Raises:
        Unsupported: not float32, groups > 1, or the library is not loaded.
    """
    x, weight, geom = saved.x, saved.weight, saved.geom
    _check(x, weight, geom.groups)
    required_library()
    g = np.ascontiguousarray(grad_out, dtype=np.float32)
    wc = np.ascontiguousarray(weight)
    gx = _grad_input(g, wc, x.shape, geom) if need_input else None
    gw = _grad_weight(np.ascontiguousarray(x), g, weight.shape, geom) if need_weight else None
    gb = channel_sums(g) if (need_bias and saved.has_bias) else None
    return gx, gw, gb


def conv_transpose2d_forward(
    x, weight, bias, stride: Pair, padding: Pads, output_padding: Pair, dilation: Pair, groups: int
):
    """2-D transposed convolution; see :func:`convscope.kernels.conv.conv_transpose2d_forward`.

    It is the input gradient of the matching conv2d, plus bias.

    Raises:
        Unsupported: not float32, groups > 1, or the library is not loaded.
    """
    _check(x, weight, groups)
    required_library()
    tgeom = ConvGeometry.transpose(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, groups
    )
    geom = tgeom.as_conv()
    out_shape = (x.shape[0], weight.shape[1], *tgeom.out_size)
    out = _grad_input(np.ascontiguousarray(x), np.ascontiguousarray(weight), out_shape, geom)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float32).reshape(-1, 1, 1)
    return out, ConvSaved(x, weight, bias is not None, geom)


def conv_transpose2d_backward(
    grad_out, saved: ConvSaved, need_input: bool = True, need_weight: bool = True, need_bias: bool = True
):
    """Gradients of :func:`conv_transpose2d_forward`; see the NumPy kernel's docstring.

    Raises:
        Unsupported: not float32, groups > 1, or the library is not loaded.
    """
    x, weight, geom = saved.x, saved.weight, saved.geom
    _check(x, weight, geom.groups)
    required_library()
    g = np.ascontiguousarray(grad_out, dtype=np.float32)
    gx = None
    if need_input:
        gx = np.empty(x.shape, dtype=np.float32)
        if gx.size:
            _forward(g, np.ascontiguousarray(weight), None, geom, x.shape[2:], gx)
    gw = _grad_weight(g, np.ascontiguousarray(x), weight.shape, geom) if need_weight else None
    gb = channel_sums(g) if (need_bias and saved.has_bias) else None
    return gx, gw, gb
