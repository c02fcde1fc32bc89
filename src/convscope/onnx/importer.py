"""Import an ONNX file as a convscope Module that runs forward and backward on convscope's engine.

Every ONNX node becomes one submodule (a convscope layer where one exists: Conv -> Conv2d or
Conv1d, BatchNormalization -> a batch-norm layer, Gemm -> Linear, MaxPool -> MaxPool2d, ...;
otherwise a small :class:`~convscope.onnx.nodes.OnnxNode`). The module runs them in the graph's
order. Float initializers in weight positions become trainable Parameters; BatchNormalization's
mean and variance become its running-statistics buffers; other constants (shapes, axes, clip
bounds) stay constants.

**Naming rule** (submodule names, hence state_dict keys): the node's name with a leading ``/``
dropped and every run of characters other than letters, digits and ``_`` replaced by one
``_`` (``/layer1/layer1.0/conv1/Conv`` -> ``layer1_layer1_0_conv1_Conv``); a name that is empty
becomes ``<op_type>_<index>``, one starting with a digit gets an ``n`` in front, and a repeated
name gets ``_2``, ``_3``, ... in graph order.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import nn
from ..autograd.tensor import Tensor
from ..nn.parameter import Parameter
from .errors import OnnxImportError, require_onnx
from .importers import IMPORTERS, NodeSpec, builder_for
from .nodes import ConstOperand, GraphInputTranspose, OnnxNode

if TYPE_CHECKING:
    from ..formats.atomic import StrPath

SUPPORTED_IMPORT_OPSETS = range(11, 21)
# ops evaluated at import time when all their inputs are constants
FOLDABLE = {"Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Concat", "Gather", "Transpose", "Slice"}
FOLDABLE |= {"ConstantOfShape", "Add", "Sub", "Mul", "Div", "Flatten"}
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def module_name(node_name: str, op_type: str, index: int, taken: set) -> str:
    """The submodule name of an ONNX node by the documented rule (see the module docstring)."""
    name = _NOT_NAME.sub("_", node_name.lstrip("/")).strip("_")
    if not name:
        name = f"{op_type}_{index}"
    if name[0].isdigit():
        name = "n" + name
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


class OnnxModel(nn.Module):
    """A module made from an ONNX graph: one submodule per node, run in graph order.

    Attributes:
        input_name (str), output_names (list): the graph's value names.
        input_shape (tuple): the graph input's (C, H, W) (None for a dynamic dimension),
            NCHW even when the file takes NHWC (see ``input_layout``).
        input_layout (str): 'NCHW', or 'NHWC' when the file began with an NHWC -> NCHW
            Transpose (this module takes NCHW input and skips that transpose).
        metadata (dict): the file's metadata_props.
        opset (int): the file's default-domain opset.
    """

    def __init__(self, steps, constants, input_name, output_names, input_shape, layout, metadata, opset):
        super().__init__()
        self._steps = []
        for name, module, ins, outs in steps:
            self.add_module(name, module)
            self._steps.append((name, tuple(ins), tuple(outs)))
        self._constants = constants
        self.input_name, self.output_names = input_name, list(output_names)
        self.input_shape, self.input_layout = input_shape, layout
        self.metadata, self.opset = dict(metadata), opset

    def forward(self, x: Tensor) -> Any:
        env = dict(self._constants)
        env[self.input_name] = x
        modules = self._modules
        for name, ins, outs in self._steps:
            args = [env[v] if v else None for v in ins]
            while args and args[-1] is None:
                args.pop()
            out = modules[name](*args)
            if len(outs) == 1:
                env[outs[0]] = out
            else:
                for o, v in zip(outs, out if isinstance(out, tuple) else (out,), strict=False):
                    env[o] = v
        results = [env[n] for n in self.output_names]
        return results[0] if len(results) == 1 else tuple(results)

    def preprocessing(self) -> dict:
        """mean, std, input_size, classes and normalization_in_graph from the metadata (when present)."""
        return preprocessing_from_metadata(self.metadata)


def preprocessing_from_metadata(meta: dict) -> dict:
    out: dict = {}
    for key in ("mean", "std"):
        if f"preprocessing.{key}" in meta:
            out[key] = [float(v) for v in json.loads(meta[f"preprocessing.{key}"])]
    if "preprocessing.input_size" in meta:
        out["input_size"] = tuple(int(v) for v in meta["preprocessing.input_size"].split("x"))
    if "classes" in meta:
        out["classes"] = [str(c) for c in json.loads(meta["classes"])]
    out["normalization_in_graph"] = meta.get("preprocessing.normalization_in_graph") == "true"
    return out


def _read(path):
    onnx = require_onnx()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such ONNX file: {path}")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as err:  # the protobuf parser raises its own DecodeError types
        raise OnnxImportError(f"ONNX import: {path} is not a readable ONNX model: {err}") from None
    if not proto.graph.node:
        raise OnnxImportError(f"ONNX import: {path} holds no graph nodes (not an ONNX model?)")
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxImportError(
                f"ONNX import: {path} keeps initializer {t.name!r} in an external data file; "
                "convscope reads self-contained files only (save with save_as_external_data=False)"
            )
    return proto


def _opset(proto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    raise OnnxImportError("ONNX import: the model declares no default-domain (ai.onnx) opset")


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def _constant_value(node, attrs):
    from onnx import numpy_helper

    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    if "value_ints" in attrs:
        return np.asarray(attrs["value_ints"], dtype=np.int64)
    raise OnnxImportError(f"ONNX import: Constant node {node.name!r}: unsupported value attribute")


def _dims(value_info) -> tuple:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def load(path: StrPath) -> OnnxModel:
    """Build a convscope module from an ONNX file.

    Args:
        path (str or PathLike): a self-contained .onnx file (opset 11-20).

    Returns:
        OnnxModel: an ``nn.Module`` (eval mode) taking (N, C, H, W) (or (N, C, L)) input;
        submodule names follow the naming rule of this module's docstring.

    Raises:
        OnnxImportError (ValueError): unsupported ops (all listed at once, with node names, the
            opset and the supported list), an opset outside 11-20, several graph inputs,
            external data, a corrupt file.
        FileNotFoundError: no such file.

    Example:
        >>> model = convscope.onnx.load("resnet18.onnx")
        >>> model(convscope.randn(1, 3, 224, 224)).shape
        (1, 1000)
    """
    from onnx import numpy_helper

    proto = _read(path)
    opset = _opset(proto)
    graph = proto.graph
    if opset not in SUPPORTED_IMPORT_OPSETS:
        raise OnnxImportError(
            f"ONNX import: {os.fspath(path)} uses opset {opset}; supported are opsets "
            f"{SUPPORTED_IMPORT_OPSETS.start}-{SUPPORTED_IMPORT_OPSETS.stop - 1}"
        )
    unsupported = [
        (n.op_type, n.name or f"#{i}")
        for i, n in enumerate(graph.node)
        if n.op_type != "Constant"
        and (n.domain not in ("", "ai.onnx") or builder_for(n.op_type, opset) is None)
    ]
    if unsupported:
        listed = ", ".join(f"{op} ({name})" for op, name in unsupported)
        raise OnnxImportError(
            f"ONNX import: {os.fspath(path)} (opset {opset}) has {len(unsupported)} node(s) of "
            f"unsupported op types: {listed}; supported op types: Constant, {', '.join(sorted(IMPORTERS))}"
        )
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    initializers = set(consts)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise OnnxImportError(
            f"ONNX import: expected a graph with one input, got {len(inputs)}: {[i.name for i in inputs]}"
        )
    graph_input = inputs[0]
    dims = _dims(graph_input)
    params: dict[str, Parameter] = {}

    def param_of(name: str) -> Parameter:
        if name not in params:
            params[name] = Parameter(np.array(consts[name], dtype=np.float32, copy=True))
        return params[name]

    # an exporter's NHWC -> NCHW transpose on the graph input is absorbed: the module takes NCHW
    consumers = [n for n in graph.node if graph_input.name in n.input]
    layout = "NCHW"
    skip_transpose = None
    if len(consumers) == 1 and consumers[0].op_type == "Transpose" and len(dims) == 4:
        if list(_attrs(consumers[0]).get("perm", [])) == [0, 3, 1, 2]:
            layout, skip_transpose = "NHWC", consumers[0]
            dims = (dims[0], dims[3], dims[1], dims[2])

    steps: list[tuple[str, Any, list, list]] = []
    taken: set[str] = set()
    for index, node in enumerate(graph.node):
        attrs = _attrs(node)
        if node.op_type == "Constant":
            consts[node.output[0]] = _constant_value(node, attrs)
            continue
        name = module_name(node.name, node.op_type, index, taken)
        if skip_transpose is not None and node is skip_transpose:
            steps.append((name, GraphInputTranspose(), list(node.input), list(node.output)))
            continue
        node_consts = [consts.get(v) if v else None for v in node.input]
        if (
            node.op_type in FOLDABLE
            and node.input
            and all(consts.get(v) is not None for v in node.input if v)
        ):
            # constant in, constant out (Identity of a shared initializer, shape arithmetic on
            # constants): evaluated now; an Identity/Cast of a weight stays a weight of its own
            spec = NodeSpec(node, attrs, node_consts, opset, lambda i: None, [False] * len(node.input))
            value = _builder(node.op_type, opset)(spec)(*node_consts)
            consts[node.output[0]] = np.asarray(value)
            if node.op_type in ("Identity", "Cast") and node.input[0] in initializers:
                initializers.add(node.output[0])
            continue

        def param(i, node=node):
            return param_of(node.input[i])

        weights = [v in initializers for v in node.input]
        spec = NodeSpec(node, attrs, node_consts, opset, param, weights)
        try:
            module = _builder(node.op_type, opset)(spec)
        except OnnxImportError:
            raise
        except (ValueError, TypeError, KeyError) as err:
            raise OnnxImportError(f"ONNX import: {spec.label}: cannot be built: {err}") from None
        if isinstance(module, OnnxNode):
            ins = list(node.input)
        elif isinstance(module, ConstOperand):
            ins = [node.input[1 - module.position]]
        else:  # a convscope layer holds its weights: it takes the data input only
            ins = [node.input[0]]
        steps.append((name, module, ins, list(node.output)))

    # constants that stay constants: what no module turned into a parameter or buffer
    used = {v for _, _, ins, _ in steps for v in ins}
    runtime_consts = {k: v for k, v in consts.items() if k in used}
    outputs = [o.name for o in graph.output]
    meta = {p.key: p.value for p in proto.metadata_props}
    model = OnnxModel(
        steps,
        runtime_consts,
        graph_input.name,
        outputs,
        tuple(dims[1:]),
        layout,
        meta,
        opset,
    )
    model.model_name = os.path.basename(os.fspath(path))
    model.eval()
    return model


def _builder(op_type: str, opset: int):
    build = builder_for(op_type, opset)
    if build is None:  # load() checked every node first
        raise OnnxImportError(f"ONNX import: no builder for {op_type} at opset {opset}")
    return build


__all__ = ["load", "module_name", "OnnxModel", "SUPPORTED_IMPORT_OPSETS", "Tensor"]
