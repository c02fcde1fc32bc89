"""One table: tape op class -> the function that writes its ONNX node(s).

An emitter reads what the recorded node holds (its positional arguments in ``node.inputs``,
the context it saved in forward, its output shape) and adds equivalent ONNX nodes through
:class:`~convscope.onnx.export.Emit`. Anything ONNX cannot express exactly raises
:class:`OnnxExportError` naming the layer; nothing is approximated silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..autograd.tensor import Tensor
from ..ops import activation as A
from ..ops import cast as CA
from ..ops import conv as C
from ..ops import dropout as D
from ..ops import empty as EM
from ..ops import linear as L
from ..ops import loss as LO
from ..ops import math as M
from ..ops import norm as N
from ..ops import pool as P
from ..ops import shape as S

if TYPE_CHECKING:
    from .export import Emit

Emitter = Callable[..., str]


def _spatial(shape) -> bool:
    """A shape with spatial axes beyond (N, C) that are not all 1."""
    return len(shape) >= 3 and int(np.prod(shape[2:])) > 1


def _asymmetric(padding) -> bool:
    return any(before != after for before, after in padding)


def _padded(padding) -> bool:
    return any(p for pair in padding for p in pair)


def _pads_2d(padding) -> list:
    """((top, bottom), (left, right)) -> ONNX [top, left, bottom, right]."""
    return [int(p[0]) for p in padding] + [int(p[1]) for p in padding]


def _window_attrs(g) -> dict:
    """ONNX attributes of a node's saved ConvGeometry (kernel, stride, padding, dilation)."""
    return {
        "kernel_shape": list(g.kernel),
        "strides": list(g.stride),
        "pads": _pads_2d(g.padding),
        "dilations": list(g.dilation),
    }


def conv2d(e, node) -> str:
    x, w, b = node.inputs[:3]
    g = node.geometry  # the ConvGeometry the op saved in forward
    conv1d = e.conv1d_source(node)
    if conv1d is not None:  # (N, C_in, 1, L) conv of an unsqueezed (N, C_in, L) input: a 1-D Conv
        x_name, w_name = conv1d
        ins = [x_name, w_name] + ([e.value(b)] if b is not None else [])
        return e.one(
            "Conv",
            ins,
            strides=[int(g.stride[1])],
            pads=[int(g.padding[1][0]), int(g.padding[1][1])],
            dilations=[int(g.dilation[1])],
            group=int(g.groups),
            kernel_shape=[int(g.kernel[1])],
        )
    if _asymmetric(g.padding):
        e.bakes_size("asymmetric padding (as 'same' at a stride resolves at the export size)")
    ins = [e.value(x), e.value(w)] + ([e.value(b)] if b is not None else [])
    return e.one("Conv", ins, group=int(g.groups), **_window_attrs(g))


def conv_transpose2d(e, node) -> str:
    x, w, b = node.inputs[:3]
    g = node.geometry
    ins = [e.value(x), e.value(w)] + ([e.value(b)] if b is not None else [])
    return e.one(
        "ConvTranspose", ins, output_padding=list(g.output_padding), group=int(g.groups), **_window_attrs(g)
    )


def max_pool2d(e, node) -> str:
    x = node.inputs[0]
    g = node.geometry
    if g.out_size == (1, 1) and tuple(g.in_size) == tuple(g.kernel) and not _padded(g.padding):
        e.bakes_size("max pooling over the whole map")
        return e.one("GlobalMaxPool", [e.value(x)])
    return e.one("MaxPool", [e.value(x)], ceil_mode=int(g.ceil_mode), **_window_attrs(g))


def avg_pool2d(e, node) -> str:
    x = node.inputs[0]
    g = node.geometry
    count_include_pad, divisor_override = node.args[4], node.args[5]
    if divisor_override is not None:
        e.fail(f"avg_pool2d with divisor_override={divisor_override} has no ONNX AveragePool equivalent")
    attrs = _window_attrs(g)
    del attrs["dilations"]  # AveragePool has dilations only from opset 19
    include = int(bool(count_include_pad))
    return e.one("AveragePool", [e.value(x)], ceil_mode=int(g.ceil_mode), count_include_pad=include, **attrs)


def _adaptive_windows(n_in: int, n_out: int) -> list:
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def adaptive_avg_pool2d(e, node) -> str:
    x = node.inputs[0]
    (h, w), (ho, wo) = x.shape[2:], node.out_shape[2:]
    if (ho, wo) == (1, 1):
        return e.one("GlobalAveragePool", [e.value(x)])
    e.bakes_size(f"adaptive average pooling to {ho}x{wo}")
    if h % ho == 0 and w % wo == 0:
        k = [h // ho, w // wo]
        return e.one("AveragePool", [e.value(x)], kernel_shape=k, strides=k)
    # uneven windows: an exact linear map (N, C, H*W) @ P (H*W, H_out*W_out)
    pool = np.zeros((h, w, ho, wo), dtype=x.dtype)
    for i, (h0, h1) in enumerate(_adaptive_windows(h, ho)):
        for j, (w0, w1) in enumerate(_adaptive_windows(w, wo)):
            pool[h0:h1, w0:w1, i, j] = 1.0 / ((h1 - h0) * (w1 - w0))
    flat = e.reshape(e.value(x), [0, 0, h * w])  # (N, C, H, W) -> (N, C, H*W)
    matrix = e.b.constant_node(pool.reshape(h * w, ho * wo), f"{e.node_base}PoolMatrix")
    mixed = e.one("MatMul", [flat, matrix])
    return e.reshape(mixed, [0, 0, ho, wo])  # (N, C, H_out*W_out) -> (N, C, H_out, W_out)


def adaptive_max_pool2d(e: Emit, node) -> str:
    x = node.inputs[0]
    (h, w), (ho, wo) = x.shape[2:], node.out_shape[2:]
    if (ho, wo) == (1, 1):
        return e.one("GlobalMaxPool", [e.value(x)])
    e.bakes_size(f"adaptive max pooling to {ho}x{wo}")
    if h % ho == 0 and w % wo == 0:
        k = [h // ho, w // wo]
        return e.one("MaxPool", [e.value(x)], kernel_shape=k, strides=k)
    e.fail(
        f"adaptive max pooling from {h}x{w} to {ho}x{wo} has uneven windows, which ONNX's MaxPool "
        "cannot express; export at an input size divisible by the output size"
    )


def batch_norm_eval(e, node) -> str:
    x, mean, var, weight, bias, eps = node.inputs
    c = x.shape[1]
    scale = e.value(weight) if weight is not None else e.b.const(np.ones(c), x.dtype, "bn_ones")
    shift = e.value(bias) if bias is not None else e.b.const(np.zeros(c), x.dtype, "bn_zeros")
    return e.one(
        "BatchNormalization",
        [e.value(x), scale, shift, e.value(mean), e.value(var)],
        epsilon=float(eps),
    )


def batch_norm_train(e: Emit, node) -> str:
    e.fail("batch norm ran in training mode; export runs the model in eval mode (model.eval())")


def _unary(op_type: str) -> Emitter:
    def emit(e, node) -> str:
        return e.one(op_type, [e.value(node.inputs[0])])

    emit.__name__ = f"emit_{op_type}"
    return emit


def leaky_relu(e, node) -> str:
    return e.one("LeakyRelu", [e.value(node.inputs[0])], alpha=float(node.inputs[1]))


def _softmax(op_type: str) -> Emitter:
    def emit(e, node) -> str:
        x, dim = node.inputs
        return e.one(op_type, [e.value(x)], axis=int(dim) % x.ndim)

    return emit


def linear(e, node) -> str:
    x, w, b = node.inputs
    if x.ndim >= 3:
        e.bakes_size("a linear layer over the last axis of a map")
    if x.ndim == 2:
        ins = [e.value(x), e.value(w)] + ([e.value(b)] if b is not None else [])
        return e.one("Gemm", ins, transB=1)
    wt = e.one("Transpose", [e.value(w)], perm=[1, 0])
    out = e.one("MatMul", [e.value(x), wt])
    return e.one("Add", [out, e.value(b)]) if b is not None else out


def _binary(op_type: str) -> Emitter:
    def emit(e, node) -> str:
        a, b = node.inputs
        for t in (a, b):
            if (not isinstance(t, Tensor) or t.grad_fn is None) and _spatial(np.shape(t)):
                e.bakes_size(f"{op_type} with a constant of shape {np.shape(t)}")
        return e.one(op_type, [e.value(a), e.value(b)])

    return emit


def pow_(e, node) -> str:
    return e.one("Pow", [e.value(node.inputs[0]), e.value(node.inputs[1])])


def clamp(e, node) -> str:
    x, lo, hi = node.inputs
    dt = x.dtype
    ins = [e.value(x), e.b.const(lo, dt, "clip_min") if lo is not None else ""]
    if hi is not None:
        ins.append(e.b.const(hi, dt, "clip_max"))
    return e.one("Clip", ins)


def _reduce(op_type: str) -> Emitter:
    def emit(e, node) -> str:
        x = node.inputs[0]
        axes = [int(a) for a in node.axes]
        keep = int(bool(node.keepdim))
        if op_type == "ReduceSum" or e.opset >= 18:
            return e.one(op_type, [e.value(x), e.b.ints(axes, "axes")], keepdims=keep)
        return e.one(op_type, [e.value(x)], axes=axes, keepdims=keep)

    return emit


def max_reduce(e, node) -> str:
    x = node.inputs[0]
    dim = node.dim
    axes = list(range(x.ndim)) if dim is None else [int(dim)]
    keep = int(len(node.out_shape) == x.ndim and dim is not None)
    # the op's min/max choice is an option, not a saved value: read it off the recorded argmax
    chosen = x.data.reshape(-1)[node.idx] if dim is None else np.take_along_axis(x.data, node.idx, dim)
    extreme = x.data.max(axis=None if dim is None else dim, keepdims=dim is not None)
    op = "ReduceMax" if np.array_equal(chosen, extreme) else "ReduceMin"
    if e.opset >= 18:
        return e.one(op, [e.value(x), e.b.ints(axes, "axes")], keepdims=keep)
    return e.one(op, [e.value(x)], axes=axes, keepdims=keep)


def matmul(e, node) -> str:
    e.bakes_size("a matrix product")
    return e.one("MatMul", [e.value(node.inputs[0]), e.value(node.inputs[1])])


def reshape(e, node) -> str:
    x = node.inputs[0]
    out = tuple(node.out_shape)
    src = e.value(x)
    same_batch = x.ndim and out and x.shape[0] == out[0]
    if same_batch and [d for d in out[1:] if d != 1] == [d for d in x.shape[1:] if d != 1]:
        # only size-1 axes inserted or removed (never the batch axis): Unsqueeze / Squeeze keep
        # every other size free
        squeezed = [i for i, d in enumerate(x.shape) if d == 1 and i > 0]
        if squeezed:
            src = e.one("Squeeze", [src, e.b.ints(squeezed, "axes")])
        inserted = [i for i, d in enumerate(out) if d == 1 and i > 0]
        return e.one("Unsqueeze", [src, e.b.ints(inserted, "axes")]) if inserted else src
    if _spatial(x.shape):
        e.bakes_size(f"a reshape of a {tuple(x.shape[2:])} map")
    if x.ndim >= 2 and len(out) == 2 and out[0] == x.shape[0] and out[1] == int(np.prod(x.shape[1:])):
        return e.one("Flatten", [src], axis=1)
    return e.reshape(src, e.shape_spec(x.shape, out))


def permute(e, node) -> str:
    x, dims = node.inputs
    return e.one("Transpose", [e.value(x)], perm=[int(d) for d in dims])


def expand(e, node) -> str:
    x = node.inputs[0]
    e.bakes_size("an expand to a fixed shape")
    out = tuple(node.out_shape)
    pad = (1,) * (len(out) - x.ndim) + tuple(x.shape)
    # where the input already has the size, 1 broadcasts the same way and keeps the batch dynamic
    target = [1 if s == o else o for s, o in zip(pad, out, strict=True)]
    return e.one("Expand", [e.value(x), e.b.ints(target)])


def index(e, node) -> str:
    x, key = node.inputs
    items = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in items):
        i = next(i for i, k in enumerate(items) if k is Ellipsis)
        items = items[:i] + (slice(None),) * (x.ndim - len(items) + 1) + items[i + 1 :]
    if not all(isinstance(k, (slice, int, np.integer)) for k in items):
        e.fail(f"indexing with {key!r} (None or advanced indices) is not exported; use slices")
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for axis, k in enumerate(items):
        if isinstance(k, slice):
            start, stop, step = k.indices(x.shape[axis])
            if (start, stop, step) == (0, x.shape[axis], 1):
                continue
            if axis >= 2:
                e.bakes_size("slicing a spatial axis")
            if axis == 0 and e.dynamic_batch:
                e.fail("slicing the batch dimension cannot be exported with a dynamic batch size")
            if step < 0:
                stop = -(x.shape[axis] + 1) if stop < 0 else stop
            starts.append(start)
            ends.append(stop)
            axes.append(axis)
            steps.append(step)
        else:
            k = int(k) % x.shape[axis]
            starts.append(k)
            ends.append(k + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
    out = e.value(x)
    if axes:
        ins = [out, e.b.ints(starts, "starts"), e.b.ints(ends, "ends"), e.b.ints(axes, "axes")]
        out = e.one("Slice", ins + [e.b.ints(steps, "steps")])
    if squeeze:
        out = e.one("Squeeze", [out, e.b.ints(squeeze, "axes")])
    return out


def cat(e, node) -> str:
    ins = [e.value(t) for t in node.inputs]
    return e.one("Concat", ins, axis=int(node.dim))


def stack(e, node) -> str:
    axes = e.b.ints([int(node.dim)], "axes")
    ins = [e.one("Unsqueeze", [e.value(t), axes]) for t in node.inputs]
    return e.one("Concat", ins, axis=int(node.dim))


def where(e, node) -> str:
    cond, a, b = node.inputs
    return e.one("Where", [e.value(cond), e.value(a), e.value(b)])


def pad(e, node) -> str:
    from .pad import emit_pad

    return emit_pad(e, node)


def interpolate(e, node) -> str:
    x, size, mode, align_corners, scales = node.inputs
    attrs: dict = {"mode": "nearest" if mode == "nearest" else "linear"}
    if mode == "nearest":
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "bilinear":
        attrs["coordinate_transformation_mode"] = "align_corners" if align_corners else "pytorch_half_pixel"
    else:
        e.fail(f"interpolate mode {mode!r} is not exported (nearest and bilinear are)")
    if scales is not None:
        # the source index uses 1/scale_factor: pass the scales themselves
        s = e.b.const([1.0, 1.0] + [float(v) for v in scales], np.float32, "scales")
        return e.one("Resize", [e.value(x), "", s], **attrs)
    e.bakes_size(f"resizing to a fixed {tuple(node.out_shape[2:])}")
    sizes = e.b.ints(list(node.out_shape[2:]), "sizes")
    if e.dynamic_batch:
        shape = e.one("Shape", [e.value(x)])
        nc = e.one("Gather", [shape, e.b.ints([0, 1], "indices")], axis=0)
        sizes = e.one("Concat", [nc, sizes], axis=0)
    else:
        sizes = e.b.ints(list(node.out_shape), "sizes")
    return e.one("Resize", [e.value(x), "", "", sizes], **attrs)


def dropout(e, node) -> str:
    return e.one("Identity", [e.value(node.inputs[0])])


def cast(e, node) -> str:
    from onnx import helper

    to = helper.np_dtype_to_tensor_dtype(np.dtype(node.inputs[1]))
    return e.one("Cast", [e.value(node.inputs[0])], to=int(to))


def empty(e: Emit, node) -> str:
    e.fail(
        f"the example input gave this layer an empty tensor (output shape {tuple(node.out_shape)}); "
        "export with an example that has at least one element on every axis"
    )


def loss(e: Emit, node) -> str:
    e.fail("a loss cannot be exported; export the model, not model + loss")


EMITTERS: dict[type, Emitter] = {
    C.Conv2dOp: conv2d,
    C.ConvTranspose2dOp: conv_transpose2d,
    P.MaxPool2dOp: max_pool2d,
    P.AvgPool2dOp: avg_pool2d,
    P.AdaptiveAvgPool2dOp: adaptive_avg_pool2d,
    P.AdaptiveMaxPool2dOp: adaptive_max_pool2d,
    P.PadOp: pad,
    P.InterpolateOp: interpolate,
    N.BatchNormEvalOp: batch_norm_eval,
    N.BatchNormTrainOp: batch_norm_train,
    A.ReLUOp: _unary("Relu"),
    A.SigmoidOp: _unary("Sigmoid"),
    A.TanhOp: _unary("Tanh"),
    A.LeakyReLUOp: leaky_relu,
    A.SoftmaxOp: _softmax("Softmax"),
    A.LogSoftmaxOp: _softmax("LogSoftmax"),
    L.LinearOp: linear,
    M.MatMulOp: matmul,
    M.AddOp: _binary("Add"),
    M.SubOp: _binary("Sub"),
    M.MulOp: _binary("Mul"),
    M.DivOp: _binary("Div"),
    M.NegOp: _unary("Neg"),
    M.ExpOp: _unary("Exp"),
    M.LogOp: _unary("Log"),
    M.SqrtOp: _unary("Sqrt"),
    M.AbsOp: _unary("Abs"),
    M.PowOp: pow_,
    M.ClampOp: clamp,
    M.SumOp: _reduce("ReduceSum"),
    M.MeanOp: _reduce("ReduceMean"),
    M.MaxReduceOp: max_reduce,
    S.ReshapeOp: reshape,
    S.PermuteOp: permute,
    S.ExpandOp: expand,
    S.IndexOp: index,
    S.CatOp: cat,
    S.StackOp: stack,
    S.WhereOp: where,
    D.DropoutOp: dropout,
    CA.CastOp: cast,
    LO.CoefficientLossOp: loss,
    EM.EmptyOp: empty,
}


def emitter_for(fn: type) -> Emitter | None:
    """The emitter of a tape op class (None when the op has no ONNX form)."""
    return EMITTERS.get(fn)


__all__ = ["EMITTERS", "emitter_for", "Tensor"]
