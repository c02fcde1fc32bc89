"""One table: ONNX op type (and version) -> the function that builds its convscope module.

``IMPORTERS[op_type]`` maps the opset version where a form of the operator begins to its builder;
the builder used is the one of the newest version not above the model's opset (Unsqueeze takes
its axes as an attribute before opset 13 and as an input from 13, for example).

A builder gets a :class:`NodeSpec` (attributes, constant inputs, shared parameters) and returns a
Module: a convscope layer (which holds the node's weights and takes the data input only), a
:class:`ConstOperand` (one stored operand) or an :class:`OnnxNode` (takes every input in ONNX
order; the graph module passes the constants along).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from .. import nn
from ..nn import functional as F
from .errors import OnnxImportError
from .nodes import (
    BatchNorm,
    ConstOperand,
    OnnxNode,
    PaddedConv,
    PaddedMaxPool,
    as_tensor,
    binary,
    is_tensor,
)


class NodeSpec:
    """What a builder knows about one ONNX node.

    Attributes:
        node: the NodeProto. attrs (dict): its attributes as Python values.
        consts (list): per input, its constant value (ndarray) or None when computed at run time.
        version (int): the model's opset.
        params (callable): ``params(i)`` the shared Parameter for constant input i.
    """

    def __init__(self, node, attrs: dict, consts: list, version: int, params: Callable, weights: list):
        self.node, self.attrs, self.consts, self.version, self.param = node, attrs, consts, version, params
        self.weights = weights  # per input: an initializer (a weight), not a Constant node's value

    @property
    def label(self) -> str:
        return f"{self.node.op_type} node {self.node.name!r}"

    def fail(self, message: str) -> NoReturn:
        raise OnnxImportError(f"ONNX import: {self.label}: {message}")

    def const(self, i: int):
        return self.consts[i] if i < len(self.consts) else None

    def need_const(self, i: int, what: str) -> np.ndarray:
        v = self.const(i)
        if v is None:
            self.fail(f"{what} (input {i}) must be a constant (an initializer or Constant), not computed")
        return v


def _torch_pads(pads: list, nd: int) -> tuple[tuple, bool]:
    """ONNX [b1, b2, ..., e1, e2, ...] over the last ``nd`` axes -> (torch flat pads, symmetric)."""
    begins, ends = list(pads[:nd]), list(pads[nd:])
    flat = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        flat += [int(b), int(e)]
    return tuple(flat), begins == ends


def _auto_pad(spec: NodeSpec) -> str:
    mode = spec.attrs.get("auto_pad", "NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("NOTSET", "VALID", "SAME_UPPER"):
        spec.fail(f"auto_pad={mode} is not supported (NOTSET, VALID and SAME_UPPER are)")
    return mode


# ------------------------------------------------------------------ layers with weights
def conv(spec: NodeSpec):
    w = spec.need_const(1, "the weight")
    nd = w.ndim - 2
    if nd not in (1, 2):
        spec.fail(f"only 1-D and 2-D convolutions are supported, got a {nd}-D kernel")
    a = spec.attrs
    groups = int(a.get("group", 1))
    stride = tuple(a.get("strides", [1] * nd))
    dilation = tuple(a.get("dilations", [1] * nd))
    pads = list(a.get("pads", [0] * (2 * nd)))
    mode = _auto_pad(spec)
    c_out, c_in = int(w.shape[0]), int(w.shape[1]) * groups
    has_bias = len(spec.node.input) > 2 and spec.node.input[2] != ""
    kwargs: dict[str, Any] = dict(stride=stride, dilation=dilation, groups=groups, bias=has_bias)
    if mode != "NOTSET":
        padding = "same" if mode == "SAME_UPPER" else 0
        layer = (nn.Conv1d if nd == 1 else nn.Conv2d)(c_in, c_out, w.shape[2:], padding=padding, **kwargs)
    else:
        flat, symmetric = _torch_pads(pads, nd)
        if symmetric:
            layer = (nn.Conv1d if nd == 1 else nn.Conv2d)(
                c_in, c_out, w.shape[2:], padding=pads[:nd], **kwargs
            )
        elif nd == 2:
            layer = PaddedConv(c_in, c_out, w.shape[2:], padding=0, pre_pad=flat, **kwargs)
        else:
            spec.fail(f"asymmetric 1-D padding {pads} is not supported")
    layer.weight = spec.param(1)
    if has_bias:
        layer.bias = spec.param(2)
    return layer


def conv_transpose(spec: NodeSpec):
    w = spec.need_const(1, "the weight")
    if w.ndim != 4:
        spec.fail(f"only 2-D transposed convolutions are supported, got weight shape {w.shape}")
    a = spec.attrs
    if "output_shape" in a:
        spec.fail("the output_shape attribute is not supported; give pads and output_padding")
    if _auto_pad(spec) != "NOTSET":
        spec.fail("auto_pad is not supported for ConvTranspose")
    groups = int(a.get("group", 1))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        spec.fail(f"asymmetric pads {pads} are not supported")
    has_bias = len(spec.node.input) > 2 and spec.node.input[2] != ""
    layer = nn.ConvTranspose2d(
        int(w.shape[0]),
        int(w.shape[1]) * groups,
        tuple(w.shape[2:]),
        stride=tuple(a.get("strides", [1, 1])),
        padding=tuple(pads[:2]),
        output_padding=tuple(a.get("output_padding", [0, 0])),
        groups=groups,
        bias=has_bias,
        dilation=tuple(a.get("dilations", [1, 1])),
    )
    layer.weight = spec.param(1)
    if has_bias:
        layer.bias = spec.param(2)
    return layer


def batch_norm(spec: NodeSpec):
    scale = spec.need_const(1, "the scale")
    for i, what in ((2, "the bias"), (3, "the mean"), (4, "the variance")):
        spec.need_const(i, what)
    if int(spec.attrs.get("training_mode", 0)):
        spec.fail("training_mode=1 is not supported (an inference graph is expected)")
    layer = BatchNorm(int(scale.shape[0]), eps=float(spec.attrs.get("epsilon", 1e-5)))
    layer.momentum = 1.0 - float(spec.attrs.get("momentum", 0.9))
    layer.weight, layer.bias = spec.param(1), spec.param(2)
    layer.running_mean.data[...] = spec.const(3)
    layer.running_var.data[...] = spec.const(4)
    return layer


def gemm(spec: NodeSpec):
    a = spec.attrs
    b = spec.const(1)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
    c = spec.const(2)
    has_c = len(spec.node.input) > 2 and spec.node.input[2] != ""
    if b is not None and not trans_a and alpha == 1.0 and beta == 1.0 and (not has_c or c is not None):
        out_f, in_f = b.shape if trans_b else b.shape[::-1]
        if not has_c or c.size == out_f:
            layer = nn.Linear(int(in_f), int(out_f), bias=has_c)
            p = spec.param(1)
            if not trans_b:  # the Linear weight is (out, in): keep a transposed copy as the parameter
                p.data = np.ascontiguousarray(p.data.T)
            layer.weight = p
            if has_c:
                pc = spec.param(2)
                pc.data = pc.data.reshape(-1)
                layer.bias = pc
            return layer

    def run(m, x, w, bias=None):
        x, w = as_tensor(x), as_tensor(w, x)
        y = (x.T if trans_a else x) @ (w.T if trans_b else w)
        if alpha != 1.0:
            y = y * alpha
        if bias is not None:
            bias = as_tensor(bias, x)
            y = y + (bias * beta if beta != 1.0 else bias)
        return y

    return OnnxNode("Gemm", run, {"transA": trans_a, "transB": trans_b, "alpha": alpha, "beta": beta})


def _binary(op_type: str):
    def build(spec: NodeSpec):
        for pos in (1, 0):
            v = spec.const(pos)
            other = spec.const(1 - pos)
            if v is not None and other is None:
                # a float weight operand (bias after MatMul, per-channel scale) trains; scalars are constants
                trainable = spec.weights[pos] and v.dtype.kind == "f" and (v.size > 1 or op_type == "MatMul")
                return ConstOperand(op_type, spec.param(pos) if trainable else v, pos, trainable)
        return OnnxNode(op_type, lambda m, a, b: binary(op_type, a, b))

    return build


# ------------------------------------------------------------------ pooling
def _pool_args(spec: NodeSpec):
    a = spec.attrs
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2:
        spec.fail(f"only 2-D pooling is supported, got kernel_shape {list(kernel)}")
    stride = tuple(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    mode = _auto_pad(spec)
    if mode == "SAME_UPPER":
        spec.fail("auto_pad=SAME_UPPER is not supported for pooling")
    return kernel, stride, pads, bool(a.get("ceil_mode", 0))


def max_pool(spec: NodeSpec):
    kernel, stride, pads, ceil = _pool_args(spec)
    if len(spec.node.output) > 1 and spec.node.output[1]:
        spec.fail("the Indices output of MaxPool is not supported")
    dilation = tuple(spec.attrs.get("dilations", [1, 1]))
    flat, symmetric = _torch_pads(pads, 2)
    if symmetric:
        return nn.MaxPool2d(kernel, stride, tuple(pads[:2]), dilation, ceil_mode=ceil)
    return PaddedMaxPool(kernel, stride, 0, dilation, ceil_mode=ceil, pre_pad=flat)


def average_pool(spec: NodeSpec):
    kernel, stride, pads, ceil = _pool_args(spec)
    if pads[:2] != pads[2:]:
        spec.fail(f"asymmetric pads {pads} are not supported")
    include = bool(spec.attrs.get("count_include_pad", 0))
    return nn.AvgPool2d(kernel, stride, tuple(pads[:2]), ceil_mode=ceil, count_include_pad=include)


def global_pool(kind: str):
    def build(spec: NodeSpec):
        return nn.AdaptiveAvgPool2d(1) if kind == "avg" else nn.AdaptiveMaxPool2d(1)

    return build


# ------------------------------------------------------------------ activations
def _simple(factory):
    def build(spec: NodeSpec):
        return factory()

    return build


def leaky_relu(spec: NodeSpec):
    return nn.LeakyReLU(float(spec.attrs.get("alpha", 0.01)))


def _softmax(op_type: str, coerced: bool):
    log = op_type == "LogSoftmax"

    def build(spec: NodeSpec):
        axis = int(spec.attrs.get("axis", 1 if coerced else -1))

        def run(m, x):
            ax = axis % x.ndim
            if coerced and ax != x.ndim - 1:  # opset < 13: softmax over the flattened axes ax..end
                shape = x.shape
                y = x.reshape(*shape[:ax], -1)
                y = F.log_softmax(y, dim=-1) if log else F.softmax(y, dim=-1)
                return y.reshape(*shape)
            return F.log_softmax(x, dim=ax) if log else F.softmax(x, dim=ax)

        return OnnxNode(op_type, run, {"axis": axis})

    return build


def clip(spec: NodeSpec):
    lo, hi = spec.const(1), spec.const(2)
    lo = None if lo is None else float(lo)
    hi = None if hi is None else float(hi)
    if len(spec.node.input) > 1 and spec.node.input[1] and lo is None:
        spec.need_const(1, "min")
    if len(spec.node.input) > 2 and spec.node.input[2] and hi is None:
        spec.need_const(2, "max")
    return OnnxNode("Clip", lambda m, x, *_: x.clamp(lo, hi), {"min": lo, "max": hi})


def hard_sigmoid(spec: NodeSpec):
    alpha, beta = float(spec.attrs.get("alpha", 0.2)), float(spec.attrs.get("beta", 0.5))
    return OnnxNode("HardSigmoid", lambda m, x: (x * alpha + beta).clamp(0.0, 1.0), {"alpha": alpha})


def hard_swish(spec: NodeSpec):
    return OnnxNode("HardSwish", lambda m, x: x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0))


def _unary_method(op_type: str, method: str):
    def build(spec: NodeSpec):
        return OnnxNode(op_type, lambda m, x: getattr(x, method)())

    return build


def pow_(spec: NodeSpec):
    p = spec.need_const(1, "the exponent")
    return OnnxNode("Pow", lambda m, x, _: x ** float(p), {"exponent": float(p)})


# ------------------------------------------------------------------ shapes
def _axes(spec: NodeSpec, from_input: bool, index: int = 1):
    if from_input:
        v = spec.const(index)
        if v is None and len(spec.node.input) > index and spec.node.input[index]:
            spec.need_const(index, "axes")
        return None if v is None else [int(a) for a in np.ravel(v)]
    axes = spec.attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


def flatten(spec: NodeSpec):
    axis = int(spec.attrs.get("axis", 1))

    def run(m, x):
        ax = axis % x.ndim if x.ndim else 0
        lead = int(np.prod(x.shape[:ax]))
        return x.reshape(lead, -1) if is_tensor(x) else np.reshape(x, (lead, -1))

    return OnnxNode("Flatten", run, {"axis": axis})


def reshape(spec: NodeSpec):
    allowzero = int(spec.attrs.get("allowzero", 0))

    def run(m, x, shape):
        shape = [int(s) for s in np.ravel(shape)]
        if not allowzero:
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return x.reshape(*shape) if is_tensor(x) else np.reshape(x, shape)

    return OnnxNode("Reshape", run)


def _unsqueeze(from_input: bool):
    def build(spec: NodeSpec):
        axes = _axes(spec, from_input)

        def run(m, x, *_):
            out_nd = np.ndim(x.data if is_tensor(x) else x) + len(axes)
            shape = list(x.shape if is_tensor(x) else np.shape(x))
            for a in sorted(a % out_nd for a in axes):
                shape.insert(a, 1)
            return x.reshape(*shape) if is_tensor(x) else np.reshape(x, shape)

        return OnnxNode("Unsqueeze", run, {"axes": axes})

    return build


def _squeeze(from_input: bool):
    def build(spec: NodeSpec):
        axes = _axes(spec, from_input)

        def run(m, x, *_):
            shape = list(x.shape if is_tensor(x) else np.shape(x))
            drop = {a % len(shape) for a in axes} if axes else {i for i, s in enumerate(shape) if s == 1}
            new = [s for i, s in enumerate(shape) if i not in drop]
            return x.reshape(*new) if is_tensor(x) else np.reshape(x, new)

        return OnnxNode("Squeeze", run, {"axes": axes})

    return build


def shape_op(spec: NodeSpec):
    start, end = spec.attrs.get("start", 0), spec.attrs.get("end")

    def run(m, x):
        s = np.asarray(x.shape if is_tensor(x) else np.shape(x), dtype=np.int64)
        return s[start:end]

    return OnnxNode("Shape", run)


def gather(spec: NodeSpec):
    axis = int(spec.attrs.get("axis", 0))
    idx = spec.need_const(1, "the indices")

    def run(m, x, _):
        if not is_tensor(x):
            return np.take(np.asarray(x), idx, axis=axis)
        ax = axis % x.ndim
        key = (slice(None),) * ax + (int(idx) if idx.ndim == 0 else idx.astype(np.int64),)
        return x[key]

    return OnnxNode("Gather", run, {"axis": axis})


def concat(spec: NodeSpec):
    axis = int(spec.attrs["axis"])

    def run(m, *xs):
        if not any(is_tensor(x) for x in xs):
            return np.concatenate([np.asarray(x) for x in xs], axis=axis)
        like = next(x for x in xs if is_tensor(x))
        from ..autograd import creation

        return creation.cat([as_tensor(x, like) for x in xs], dim=axis)

    return OnnxNode("Concat", run, {"axis": axis})


def transpose(spec: NodeSpec):
    perm = spec.attrs.get("perm")

    def run(m, x):
        p = list(perm) if perm is not None else list(reversed(range(np.ndim(x.data if is_tensor(x) else x))))
        return x.permute(*p) if is_tensor(x) else np.transpose(x, p)

    return OnnxNode("Transpose", run, {"perm": perm})


def slice_op(spec: NodeSpec):
    starts, ends = spec.need_const(1, "starts"), spec.need_const(2, "ends")
    axes = spec.const(3)
    steps = spec.const(4)
    for i, what in ((3, "axes"), (4, "steps")):
        if len(spec.node.input) > i and spec.node.input[i] and spec.const(i) is None:
            spec.need_const(i, what)

    def run(m, x, *_):
        nd = x.ndim if is_tensor(x) else np.ndim(x)
        key = [slice(None)] * nd
        ax = list(range(len(starts))) if axes is None else [int(a) % nd for a in axes]
        st = [1] * len(ax) if steps is None else [int(s) for s in steps]
        big = 2**62
        for a, s0, e0, k in zip(ax, starts, ends, st, strict=True):
            s0, e0 = int(s0), int(e0)
            e0 = None if (k > 0 and e0 >= big) or (k < 0 and e0 <= -big) else e0
            key[a] = slice(s0, e0, k)
        return x[tuple(key)]

    return OnnxNode("Slice", run)


def reduce(op_type: str, from_input: bool):
    def build(spec: NodeSpec):
        axes = _axes(spec, from_input)
        keep = bool(spec.attrs.get("keepdims", 1))
        if int(spec.attrs.get("noop_with_empty_axes", 0)) and not axes:
            return OnnxNode(op_type, lambda m, x, *_: x)

        def run(m, x, *_):
            dims = tuple(range(x.ndim)) if not axes else tuple(a % x.ndim for a in axes)
            if op_type == "ReduceMean":
                return x.mean(dim=dims, keepdim=keep)
            if op_type == "ReduceSum":
                return x.sum(dim=dims, keepdim=keep)
            out = x
            for d in sorted(dims, reverse=True):
                out = out.max(dim=d, keepdim=keep) if op_type == "ReduceMax" else out.min(dim=d, keepdim=keep)
                out = out[0] if isinstance(out, tuple) else out
            return out

        return OnnxNode(op_type, run, {"axes": axes, "keepdims": keep})

    return build


def pad(spec: NodeSpec):
    pads = spec.need_const(1, "the pads")
    value = spec.const(2)
    axes = spec.const(3)
    mode = spec.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in torch_mode:
        spec.fail(f"mode {mode!r} is not supported")
    pad_list = [int(p) for p in pads]
    fill = 0.0 if value is None or np.size(value) == 0 else float(np.ravel(value)[0])

    def run(m, x, *_):
        nd = x.ndim
        ax = list(range(nd)) if axes is None else [int(a) % nd for a in axes]
        full = [0] * (2 * nd)
        k = len(ax)
        for j, a in enumerate(ax):
            full[a], full[nd + a] = pad_list[j], pad_list[k + j]
        first = next((a for a in range(nd) if full[a] or full[nd + a]), nd)
        flat = []
        for a in reversed(range(first, nd)):
            flat += [full[a], full[nd + a]]
        return F.pad(x, tuple(flat), mode=torch_mode[mode], value=fill) if flat else x

    return OnnxNode("Pad", run, {"mode": mode})


def resize(spec: NodeSpec):
    a = spec.attrs
    mode = a.get("mode", "nearest")
    ctm = a.get("coordinate_transformation_mode", "half_pixel")
    nearest_mode = a.get("nearest_mode", "round_prefer_floor")
    mode, ctm, nearest_mode = (v.decode() if isinstance(v, bytes) else v for v in (mode, ctm, nearest_mode))
    if mode == "nearest":
        if ctm != "asymmetric" or nearest_mode != "floor":
            spec.fail(
                f"nearest resizing with coordinate_transformation_mode={ctm!r} and nearest_mode="
                f"{nearest_mode!r} is not supported (asymmetric + floor, PyTorch's 'nearest', is)"
            )
        torch_mode, align = "nearest", None
    elif mode == "linear":
        if ctm not in ("align_corners", "half_pixel", "pytorch_half_pixel"):
            spec.fail(f"linear resizing with coordinate_transformation_mode={ctm!r} is not supported")
        torch_mode, align = "bilinear", ctm == "align_corners"
    else:
        spec.fail(f"mode {mode!r} is not supported (nearest and linear are)")
    scales = spec.const(2)
    sizes_const = spec.const(3)
    if "axes" in a:
        spec.fail("the axes attribute is not supported")

    def run(m, x, roi=None, sc=None, sizes=None):
        if sizes is not None and np.size(sizes):
            size = tuple(int(s) for s in np.ravel(sizes)[-2:])
            return F.interpolate(x, size=size, mode=torch_mode, align_corners=align)
        sc = scales if sc is None else sc
        if sc is None or np.size(sc) < 4:
            spec.fail("needs scales or sizes")
        s = np.ravel(sc)
        return F.interpolate(x, scale_factor=(float(s[2]), float(s[3])), mode=torch_mode, align_corners=align)

    del sizes_const
    return OnnxNode("Resize", run, {"mode": torch_mode, "align_corners": align})


def constant_of_shape(spec: NodeSpec):
    from onnx import numpy_helper

    value = spec.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value).reshape(-1)

    def run(m, shape):
        return np.full([int(s) for s in np.ravel(shape)], fill[0], dtype=fill.dtype)

    return OnnxNode("ConstantOfShape", run)


def identity(spec: NodeSpec):
    return OnnxNode(spec.node.op_type, lambda m, x, *_: x)


def cast(spec: NodeSpec):
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(int(spec.attrs["to"]))

    def run(m, x):
        return x.to(dtype) if is_tensor(x) else np.asarray(x).astype(dtype)

    return OnnxNode("Cast", run, {"to": str(dtype)})


def expand(spec: NodeSpec):
    def run(m, x, shape):
        target = np.broadcast_shapes(tuple(x.shape), tuple(int(s) for s in np.ravel(shape)))
        return x.expand(*target) if tuple(x.shape) != target else x

    return OnnxNode("Expand", run)


def where(spec: NodeSpec):
    def run(m, cond, a, b):
        from ..ops.shape import WhereOp

        like = a if is_tensor(a) else b
        return WhereOp.apply(
            np.asarray(cond.data if is_tensor(cond) else cond), as_tensor(a, like), as_tensor(b, like)
        )

    return OnnxNode("Where", run)


Builder = Callable[[NodeSpec], object]

IMPORTERS: dict[str, dict[int, Builder]] = {
    "Conv": {1: conv},
    "ConvTranspose": {1: conv_transpose},
    "BatchNormalization": {1: batch_norm},
    "Gemm": {1: gemm},
    "MatMul": {1: _binary("MatMul")},
    "Add": {1: _binary("Add")},
    "Sub": {1: _binary("Sub")},
    "Mul": {1: _binary("Mul")},
    "Div": {1: _binary("Div")},
    "MaxPool": {1: max_pool},
    "AveragePool": {1: average_pool},
    "GlobalAveragePool": {1: global_pool("avg")},
    "GlobalMaxPool": {1: global_pool("max")},
    "Relu": {1: _simple(nn.ReLU)},
    "Sigmoid": {1: _simple(nn.Sigmoid)},
    "Tanh": {1: _simple(nn.Tanh)},
    "LeakyRelu": {1: leaky_relu},
    "Softmax": {1: _softmax("Softmax", True), 13: _softmax("Softmax", False)},
    "LogSoftmax": {1: _softmax("LogSoftmax", True), 13: _softmax("LogSoftmax", False)},
    "Clip": {11: clip},
    "HardSigmoid": {1: hard_sigmoid},
    "HardSwish": {14: hard_swish},
    "Neg": {1: _unary_method("Neg", "__neg__")},
    "Exp": {1: _unary_method("Exp", "exp")},
    "Log": {1: _unary_method("Log", "log")},
    "Sqrt": {1: _unary_method("Sqrt", "sqrt")},
    "Abs": {1: _unary_method("Abs", "abs")},
    "Pow": {1: pow_},
    "Flatten": {1: flatten},
    "Reshape": {5: reshape},
    "Unsqueeze": {1: _unsqueeze(False), 13: _unsqueeze(True)},
    "Squeeze": {1: _squeeze(False), 13: _squeeze(True)},
    "Shape": {1: shape_op},
    "Gather": {1: gather},
    "Concat": {1: concat},
    "Transpose": {1: transpose},
    "Slice": {10: slice_op},
    "ReduceMean": {1: reduce("ReduceMean", False), 18: reduce("ReduceMean", True)},
    "ReduceSum": {1: reduce("ReduceSum", False), 13: reduce("ReduceSum", True)},
    "ReduceMax": {1: reduce("ReduceMax", False), 18: reduce("ReduceMax", True)},
    "ReduceMin": {1: reduce("ReduceMin", False), 18: reduce("ReduceMin", True)},
    "Pad": {11: pad},
    "Resize": {11: resize},
    "Identity": {1: identity},
    "ConstantOfShape": {9: constant_of_shape},
    "Dropout": {1: identity},
    "Cast": {1: cast},
    "Expand": {8: expand},
    "Where": {9: where},
}


def builder_for(op_type: str, opset: int) -> Builder | None:
    """The builder of the newest form of ``op_type`` not above ``opset`` (None: unsupported)."""
    forms = IMPORTERS.get(op_type)
    if not forms:
        return None
    usable = [v for v in forms if v <= opset]
    return forms[max(usable)] if usable else None
