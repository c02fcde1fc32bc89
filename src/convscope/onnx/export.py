"""Export a convscope model to ONNX by reading its autograd tape.

The model runs once on the example input (eval mode, recording on); the recorded nodes, from
the input to the output, are translated one by one by the emitter table in
:mod:`convscope.onnx.emitters`. The tape is the only description of the network used: there is
no second copy of its structure. Parameters become initializers named by their state_dict
keys, nodes are named after the module that recorded them (``/layer1/0/conv1/Conv``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from ..analysis.graph import record_modules
from ..autograd.engine import topological_order
from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..ops import shape as S
from ..serialization import atomic_write
from .builder import DEFAULT_OPSET, GraphBuilder, ir_version_for
from .emitters import emitter_for
from .errors import OnnxExportError, require_onnx

if TYPE_CHECKING:
    from ..formats.atomic import StrPath
    from ..nn import Module


class Emit:
    """What an emitter sees while one tape node is translated.

    Attributes:
        b (GraphBuilder): the graph being built.
        opset (int): the target opset.
        dynamic_batch (bool): the batch dimension is symbolic.
        layer (str): the module path of the node being translated (for names and errors).
    """

    def __init__(self, builder: GraphBuilder, dynamic_batch: bool, names: dict, array_names: dict):
        self.b = builder
        self.opset = builder.opset
        self.dynamic_batch = dynamic_batch
        self.names = names  # id(tensor or node) -> value name
        self.array_names = array_names  # id(ndarray) -> state_dict key (buffers)
        self.layer = "(model)"
        self.op_name = ""
        self.node_base = "/"
        self.conv1d_outputs: set[int] = set()
        self.size_fixed_by: str | None = None  # the first layer whose ONNX form bakes in a size

    def bakes_size(self, why: str) -> None:
        """Record that this node's ONNX form holds the export's spatial size."""
        if self.size_fixed_by is None:
            self.size_fixed_by = f"{self.layer} ({why})"

    # ----------------------------------------------------------------- values
    def value(self, t) -> str:
        """The ONNX value name of a node input: a recorded tensor, a parameter, a constant."""
        if isinstance(t, Tensor):
            key = id(t.grad_fn) if t.grad_fn is not None else id(t)
            name = self.names.get(key)
            if name is not None:
                return name
            if t.grad_fn is not None:
                raise OnnxExportError(f"{self.layer}: internal order error (an input was not yet written)")
            name = self.b.initializer(t.data, "const")
            self.names[key] = name
            return name
        if isinstance(t, np.ndarray):
            return self.b.initializer(t, self.array_names.get(id(t), "const"))
        raise OnnxExportError(f"{self.layer}: cannot write the value {t!r} of type {type(t).__name__}")

    def one(self, op_type: str, inputs: list, **attrs) -> str:
        return self.b.one(op_type, inputs, f"{self.node_base}{op_type}", **attrs)

    def reshape(self, value: str, shape: list) -> str:
        return self.one("Reshape", [value, self.b.ints(shape)])

    def shape_spec(self, in_shape: tuple, out_shape: tuple) -> list:
        """The Reshape target: 0 copies the (dynamic) batch size when it is kept in front."""
        spec = [int(v) for v in out_shape]
        if not self.dynamic_batch:
            return spec
        if out_shape and in_shape and out_shape[0] == in_shape[0]:
            spec[0] = 0
            return spec
        self.fail(
            f"a reshape from {tuple(in_shape)} to {tuple(out_shape)} changes the batch dimension, "
            "which cannot be exported with a dynamic batch size (use dynamic_batch=False)"
        )

    def fail(self, message: str) -> NoReturn:
        raise OnnxExportError(f"ONNX export: layer {self.layer} ({self.op_name}): {message}")

    # ------------------------------------------------------------ conv1d
    def conv1d_source(self, node):
        """(input, weight) value names when a Conv2d node is a conv1d (unsqueezed input and
        weight with a height-1 kernel), else None; the squeeze after it becomes an alias."""
        x, w = node.inputs[0], node.inputs[1]
        if w.shape[2] != 1 or x.ndim != 4 or x.shape[2] != 1:
            return None
        xs = _unsqueezed_from(x)
        if xs is None:
            return None
        ws = _unsqueezed_from(w)
        if ws is not None:
            w_name = self.value(ws)
        elif w.grad_fn is None:
            w_name = self.b.initializer(w.data.reshape(w.shape[0], w.shape[1], w.shape[3]), "weight")
        else:
            return None
        self.conv1d_outputs.add(id(node))
        return self.value(xs), w_name


def _unsqueezed_from(t):
    """The 3-D tensor that ``t`` (N, C, 1, L) was made from by a Reshape, or None."""
    fn = t.grad_fn
    if fn is None or fn.fn is not S.ReshapeOp:
        return None
    src = fn.inputs[0]
    if isinstance(src, Tensor) and src.ndim == 3 and (src.shape[0], src.shape[1], 1, src.shape[2]) == t.shape:
        return src
    return None


def _module_of(records) -> Callable[[int], str]:
    spans = sorted(((r.first, r.last, r.name) for r in records), key=lambda s: s[1] - s[0])

    def find(seq: int) -> str:
        for first, last, name in spans:
            if first < seq < last:
                return name
        return "(model)"

    return find


def _preprocessing_props(preprocessing: dict | None, folded: bool) -> dict:
    props = {}
    pre = dict(preprocessing or {})
    for key in ("mean", "std"):
        if pre.get(key) is not None:
            props[f"preprocessing.{key}"] = json.dumps([float(v) for v in np.ravel(pre[key])])
    if pre.get("input_size") is not None:
        props["preprocessing.input_size"] = "x".join(str(int(v)) for v in pre["input_size"])
    if pre.get("classes") is not None:
        props["classes"] = json.dumps([str(c) for c in pre["classes"]])
    if "preprocessing.mean" in props:
        props["preprocessing.normalization_in_graph"] = "true" if folded else "false"
    return props


def build_graph(
    model: Module,
    example_input: Tensor | npt.NDArray[Any],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] | None = None,
    preprocessing: dict | None = None,
    fold_normalization: bool = False,
    model_name: str | None = None,
) -> Any:
    """The ONNX ModelProto of ``model``, not yet checked (see :func:`export`; nothing is written)."""
    require_onnx()
    from onnx import helper

    from .. import __version__

    ir_version = ir_version_for(opset)
    x_data = example_input.data if isinstance(example_input, Tensor) else np.asarray(example_input)
    if x_data.dtype.kind != "f":
        raise TypeError(f"ONNX export: example_input must be floating point, got dtype {x_data.dtype}")
    if x_data.ndim < 2:
        raise ValueError(
            f"ONNX export: example_input must be a batch (N, C, ...), got shape {tuple(x_data.shape)}"
        )
    input_names = list(input_names)
    if len(input_names) != 1:
        raise ValueError(f"ONNX export: one input name expected, got {input_names}")
    x = Tensor(np.array(x_data, copy=True), requires_grad=True)
    records, _, remove = record_modules(model)
    try:
        with enable_grad(), model.evaluating():
            out = model(x)
    finally:
        remove()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if output_names is None:
        output_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    output_names = list(output_names)
    if len(output_names) != len(outs):
        raise ValueError(f"ONNX export: {len(outs)} outputs but {len(output_names)} output names")
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor) or o.grad_fn is None:
            raise OnnxExportError(
                f"ONNX export: output {i} of the model is not computed from its input "
                "(nothing recorded on the tape)"
            )

    b = GraphBuilder(opset)
    for n in input_names:
        b.unique(n)
    params = {id(p): name for name, p in model.named_parameters()}
    buffers = {id(t.data): name for name, t in model.named_buffers()}
    names: dict = {}
    e = Emit(b, dynamic_batch, names, buffers)

    # parameters become initializers named by their state_dict keys, when first used
    param_tensors = {id(p): p for _, p in model.named_parameters()}

    def value_for_param(t):
        return b.initializer(t.data, params[id(t)])

    src = input_names[0]
    pre = dict(preprocessing or {})
    folded = bool(fold_normalization)
    if folded:
        if pre.get("mean") is None or pre.get("std") is None:
            raise ValueError("ONNX export: fold_normalization needs preprocessing with 'mean' and 'std'")
        c = x_data.shape[1]
        shape = (1, c) + (1,) * (x_data.ndim - 2)
        mean = np.asarray(pre["mean"], dtype=x_data.dtype).reshape(shape)
        std = np.asarray(pre["std"], dtype=x_data.dtype).reshape(shape)
        src = b.one("Sub", [src, b.initializer(mean, "preprocessing.mean")], "/preprocessing/Sub")
        src = b.one("Div", [src, b.initializer(std, "preprocessing.std")], "/preprocessing/Div")
    names[id(x)] = src

    find_module = _module_of(records)
    order = []
    seen = set()
    for o in outs:
        for node in reversed(topological_order(o.grad_fn)):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    order.sort(key=lambda n: n.seq)
    for node in order:
        for t in node.inputs:
            if isinstance(t, Tensor) and t.grad_fn is None and id(t) in param_tensors and id(t) not in names:
                names[id(t)] = value_for_param(t)
        layer = find_module(node.seq)
        e.layer, e.op_name = layer, node.name
        e.node_base = "/" if layer == "(model)" else "/" + layer.replace(".", "/") + "/"
        emitter = emitter_for(node.fn)
        if emitter is None:
            e.fail(
                f"the op {node.name} has no ONNX form in convscope's exporter; "
                "supported ops: Conv, ConvTranspose, pooling, BatchNorm, activations, Linear, "
                "elementwise math, reshapes, Concat, Pad, Resize"
            )
        if node.fn is S.ReshapeOp and id(node.inputs[0].grad_fn) in e.conv1d_outputs:
            names[id(node)] = e.value(node.inputs[0])  # the squeeze after a 1-D Conv
            continue
        names[id(node)] = emitter(e, node)

    # graph outputs: rename the producing values to the requested names
    rename = {}
    for o, n in zip(outs, output_names, strict=True):
        v = names[id(o.grad_fn)]
        if v in rename or v == src:
            v2 = b.one("Identity", [v], f"/{n}/Identity")
            rename[v2] = n
        else:
            rename[v] = n
    for node in b.nodes:
        node.input[:] = [rename.get(v, v) for v in node.input]
        node.output[:] = [rename.get(v, v) for v in node.output]
    nodes = _live_nodes(b.nodes, set(output_names))
    used = {v for node in nodes for v in node.input}
    inits = [t for t in b.initializers if t.name in used]

    batch = "batch" if dynamic_batch else int(x_data.shape[0])
    elem = helper.np_dtype_to_tensor_dtype(x_data.dtype)
    # every op size-agnostic (a fully convolutional net, global pooling): spatial sizes stay free
    free = dynamic_batch and e.size_fixed_by is None and x_data.ndim >= 3
    names_hw = ["height", "width"] if x_data.ndim == 4 else [f"size{i}" for i in range(x_data.ndim - 2)]
    in_dims = [batch, x_data.shape[1], *(names_hw if free else x_data.shape[2:])]
    inputs = [helper.make_tensor_value_info(input_names[0], elem, in_dims)]

    def out_dims(o):
        if not dynamic_batch or not o.ndim:
            return list(o.shape)
        return [batch, *o.shape[1:2], *([None] * (o.ndim - 2) if free else o.shape[2:])]

    outputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(o.dtype), out_dims(o))
        for o, n in zip(outs, output_names, strict=True)
    ]
    graph = helper.make_graph(nodes, model_name or type(model).__name__, inputs, outputs, inits)
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="convscope",
        producer_version=__version__,
        ir_version=ir_version,
    )
    props = _preprocessing_props(pre, folded)
    if props:
        helper.set_model_props(proto, props)
    return proto


def check_serialized(data: bytes) -> None:
    """``onnx.checker`` with shape inference on the serialised model (serialised once for both)."""
    onnx = require_onnx()
    try:
        onnx.checker.check_model(data, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        # a bug in an emitter, not a user error
        raise OnnxExportError(f"ONNX export produced an invalid graph: {err}") from None


def _live_nodes(nodes: list, outputs: set) -> list:
    """The nodes that contribute to ``outputs`` (a 1-D Conv leaves its unsqueezes unused)."""
    needed = set(outputs)
    keep = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(v for v in node.input if v)
    keep.reverse()
    return keep


def export(
    model: Module,
    example_input: Tensor | npt.NDArray[Any],
    path: StrPath,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] | None = None,
    preprocessing: dict | None = None,
    fold_normalization: bool = False,
) -> Any:
    """Write ``model`` as an ONNX file, built from what it computes on ``example_input``.

    Args:
        model (Module): any convscope model; it runs once in eval mode.
        example_input (Tensor or ndarray): (N, C, H, W) (or (N, C, L)) float input. The batch
            size stays free (``dynamic_batch``); the spatial sizes too when no node's ONNX form
            depends on them (no flatten of a map, fixed resize, crop, asymmetric 'same'
            padding, uneven adaptive pooling), else they are fixed at the example's. A 'same'
            convolution at a stride whose padding happens to be symmetric at the example size
            cannot be told from explicit padding: export such models with
            ``dynamic_batch=False`` or at the size they will run at.
        path (str or PathLike): the .onnx file (written atomically).
        opset (int, default 17): ONNX opset 13-20; the IR version is the lowest that
            declares it, so current runtimes accept the file.
        dynamic_batch (bool, default True): the batch dimension is named ``batch``.
        input_names (sequence of str, default ('input',)); output_names (default 'output').
        preprocessing (dict, optional): ``mean``, ``std`` (per channel), ``input_size``
            (C, H, W), ``classes``; stored in the model's ``metadata_props``.
        fold_normalization (bool, default False): put ``(x - mean) / std`` into the graph so
            it takes images in [0, 1].

    Returns:
        onnx.ModelProto: the model that was written (checked with ``onnx.checker``).

    Raises:
        OnnxExportError (ValueError): an op or attribute ONNX cannot express, naming the layer.
        ValueError: opset outside 13-20, bad names or input.
        ImportError: the onnx package is missing.

    Example:
        >>> convscope.onnx.export(model, convscope.randn(1, 1, 28, 28), "lenet5.onnx")
    """
    proto = build_graph(
        model,
        example_input,
        opset,
        dynamic_batch,
        input_names,
        output_names,
        preprocessing,
        fold_normalization,
        getattr(model, "model_name", None),
    )
    data = proto.SerializeToString()
    check_serialized(data)
    atomic_write(os.fspath(path), lambda f: f.write(data))
    return proto
