"""Read a model's structure off the autograd tape: shapes, MACs, receptive fields, depth.

One forward pass at batch 1 records the tape. Walking it from the input towards the
output, every node maps the receptive fields of its inputs to that of its output with
the geometry module's step functions; where branches meet (a residual add, a
concatenation) the fields are united, so the result is the maximum over all paths
through the graph. Forward hooks tell which module was running when each node was
recorded, so per-layer rows come from the same single pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autograd import function as _function
from ..autograd.engine import topological_order
from ..autograd.tensor import Tensor
from ..kernels.geometry import (
    ReceptiveField,
    receptive_field_step,
    receptive_field_union,
)
from ..ops import conv as _conv
from ..ops import linear as _linear
from ..ops import math as _math
from ..ops import pool as _pool
from ..ops import shape as _shape

WEIGHTED = (_conv.Conv2dOp, _conv.ConvTranspose2dOp, _linear.LinearOp)


@dataclass
class NodeInfo:
    """What the analysis knows about one recorded op."""

    node: object
    name: str
    shape: tuple
    rf: tuple | None  # (ReceptiveField along H, along W) or None when not spatial
    macs: int = 0
    depth: int = 0  # most conv/linear layers on any path from the input
    ends_spatial: bool = False  # flattens or globally pools a spatial map
    input_rf: tuple | None = None  # set where ends_spatial: the receptive field reaching this op


@dataclass
class ModuleRecord:
    """One module's forward: which nodes it recorded and what it returned."""

    name: str
    module: object
    first: int
    last: int = -1
    output: object = None
    leaf: bool = True
    nodes: list = field(default_factory=list)


def _spatial(shape, ranks=(4,)) -> bool:
    """Whether a tensor is a feature map: (N, C, H, W), or (N, C, L) when ``ranks`` has 3
    (the analysed input is a series, which 1-D layers treat as a height-1 image)."""
    return len(shape) in ranks


def _node_macs(node, batch: int) -> int:
    op = node.fn
    if op is _conv.Conv2dOp:
        w = node.inputs[1].shape  # (C_out, C_in/groups, KH, KW)
        return int(np.prod(node.out_shape)) * int(np.prod(w[1:])) // batch
    if op is _conv.ConvTranspose2dOp:
        w = node.inputs[1].shape  # (C_in, C_out/groups, KH, KW)
        return int(np.prod(node.inputs[0].shape)) * int(np.prod(w[1:])) // batch
    if op is _linear.LinearOp:
        return int(np.prod(node.out_shape)) * int(node.inputs[1].shape[1]) // batch
    if op is _math.MatMulOp:
        a = node.inputs[0].shape
        return int(np.prod(node.out_shape)) * int(a[-1]) // batch
    return 0


def _index_rf(key, rf, in_shape):
    """Receptive field after ``x[key]``: spatial slices with steps subsample the grid."""
    items = key if isinstance(key, tuple) else (key,)
    if any(k is None or k is Ellipsis or not isinstance(k, slice) for k in items):
        return None
    items = items + (slice(None),) * (len(in_shape) - len(items))
    out = []
    for axis in (2, 3):
        start, _, step = items[axis].indices(in_shape[axis])
        r = rf[axis - 2]
        out.append(ReceptiveField(r.size, r.jump * step, r.start + start * r.jump))
    return tuple(out)


def _step(node, rfs, in_shapes, ranks=(4,)):
    """The receptive field of ``node``'s output, or None; and whether it ends the spatial map."""
    op = node.fn
    first = rfs[0] if rfs else None
    if op in (_conv.Conv2dOp, _conv.ConvTranspose2dOp, _pool.MaxPool2dOp, _pool.AvgPool2dOp) and first:
        return node.geometry.receptive_field(first), False
    if op in (_pool.AdaptiveAvgPool2dOp, _pool.AdaptiveMaxPool2dOp) and first is not None:
        h, w = in_shapes[0][2:]
        oh, ow = node.out_shape[2:]
        if (oh, ow) == (1, 1):
            return None, True
        kernels = (-(-h // oh), -(-w // ow))
        strides = (max(h // oh, 1), max(w // ow, 1))
        return tuple(receptive_field_step(first[i], kernels[i], strides[i]) for i in range(2)), False
    if op is _pool.InterpolateOp and first is not None:
        out = []
        for i in range(2):
            scale = node.out_shape[2 + i] / in_shapes[0][2 + i]
            r = first[i]
            bilinear = node.args[1] == "bilinear"  # two taps per output: one more input pixel
            out.append(ReceptiveField(r.size + (r.jump if bilinear else 0), r.jump / scale, r.start))
        return tuple(out), False
    if op is _pool.PadOp and first is not None:
        pads = node.pads
        left, top = (pads + (0, 0, 0, 0))[0], (pads + (0, 0, 0, 0))[2]
        return (
            ReceptiveField(first[0].size, first[0].jump, first[0].start - top * first[0].jump),
            ReceptiveField(first[1].size, first[1].jump, first[1].start - left * first[1].jump),
        ), False
    if op is _shape.IndexOp and first is not None:
        return _index_rf(node.key, first, in_shapes[0]), False
    if not _spatial(node.out_shape, ranks):
        # flatten, linear layer, spatial mean...: the map ends here if the input was spatial
        return None, first is not None
    if op in (_math.MeanOp, _math.SumOp, _math.MaxReduceOp, _math.VarOp) and first is not None:
        return first, False  # reductions over channels keep the grid
    united = [r for r in rfs if r is not None]
    if not united:
        return None, False
    return (
        receptive_field_union([r[0] for r in united]),
        receptive_field_union([r[1] for r in united]),
    ), False


def analyse_tape(output, inputs, batch: int = 1):
    """Walk the tape from ``inputs`` to ``output``.

    Returns:
        list of NodeInfo in execution order (inputs first).
    """
    root = output.grad_fn
    if root is None:
        raise ValueError("the model's output is not connected to its input (no operations recorded)")
    order = list(reversed(topological_order(root)))
    ranks = (3, 4) if any(len(t.shape) == 3 for t in inputs) else (4,)
    start = {
        id(t): (ReceptiveField(), ReceptiveField()) if _spatial(t.shape, ranks) else None for t in inputs
    }
    depth0 = {id(t): 0 for t in inputs}
    rf_of: dict[int, tuple | None] = {}
    depth_of: dict[int, int] = {}
    infos: list[NodeInfo] = []
    for node in order:
        rfs, shapes, depths = [], [], []
        for t in node.inputs:
            if not isinstance(t, Tensor):
                continue
            key = id(t.grad_fn) if t.grad_fn is not None else id(t)
            if t.grad_fn is not None:
                rfs.append(rf_of.get(key))
                depths.append(depth_of.get(key, 0))
                shapes.append(t.shape)
            elif key in start:
                rfs.append(start[key])
                depths.append(depth0[key])
                shapes.append(t.shape)
        rf, ends = _step(node, rfs, shapes, ranks) if rfs else (None, False)
        if not _spatial(node.out_shape, ranks):
            rf = None
        depth = max(depths, default=0) + (1 if node.fn in WEIGHTED else 0)
        rf_of[id(node)], depth_of[id(node)] = rf, depth
        infos.append(
            NodeInfo(
                node,
                node.name,
                tuple(node.out_shape),
                rf,
                _node_macs(node, batch),
                depth,
                ends and any(r is not None for r in rfs),
            )
        )
        if ends:
            infos[-1].input_rf = next((r for r in rfs if r is not None), None)
    return infos


def record_modules(model):
    """Install hooks that log each module's forward.

    Returns:
        (records, stack, remove): finished ModuleRecords, the stack of modules whose forward is
        running (to name the layer an error came from), and a function that removes the hooks.
    """
    records, stack, handles = [], [], []
    for name, module in model.named_modules():
        leaf = not any(True for _ in module.children())

        def pre(mod, args, name=name, leaf=leaf):
            rec = ModuleRecord(name or "(model)", mod, _function.next_seq(), leaf=leaf)
            stack.append(rec)

        def post(mod, args, out, name=name):
            rec = stack.pop()
            rec.last = _function.next_seq()
            rec.output = out
            records.append(rec)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    def remove():
        for h in handles:
            h.remove()

    return records, stack, remove
