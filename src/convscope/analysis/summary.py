"""``convscope.summary(model, input_size)``: per-layer shapes, parameters, MACs and receptive fields.

Everything comes from one recorded forward pass at batch 1 (see graph.py), so it works on
any Module built from convscope.nn, branches included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..nn.functional._checks import InputTooSmallError
from .calc import parse_ints
from .graph import analyse_tape, record_modules


def parse_input_size(value) -> tuple:
    """'3x224x224' -> (C, H, W) for images, '1x150' -> (C, L) for 1-D series; anything else is a
    ValueError naming the expected forms."""
    return parse_ints(
        value, "input size", "CxHxW, e.g. 3x224x224 (or CxL for 1-D models, e.g. 1x150)", (2, 3)
    )


def _fmt_rf(rfs, attr):
    if rfs is None:
        return None
    values = [getattr(r, attr) for r in rfs]
    values = [int(v) if float(v).is_integer() else round(float(v), 3) for v in values]
    return values[0] if values[0] == values[1] else values


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    rf: tuple | None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "receptive_field": _fmt_rf(self.rf, "size"),
            "stride": _fmt_rf(self.rf, "jump"),
            "padding": _fmt_rf(self.rf, "padding"),
        }


class Summary:
    """The result of :func:`summary`: ``rows`` plus totals; ``str()`` is the terminal table."""

    def __init__(
        self,
        model_name,
        input_size,
        rows,
        total_params,
        trainable_params,
        total_macs,
        receptive_field,
        layers_counted,
        output_shape,
        fields=None,
    ):
        self.model_name, self.input_size, self.rows = model_name, input_size, rows
        self.total_params, self.trainable_params, self.total_macs = total_params, trainable_params, total_macs
        self.receptive_field, self.layers_counted = receptive_field, layers_counted
        self.output_shape = output_shape
        self.fields = fields or {}

    def field_of(self, name: str) -> tuple:
        """(ReceptiveField along H, along W) of the output of module ``name`` (blocks included).

        Raises:
            ValueError: unknown name, or an output that is not a spatial feature map.
        """
        if self.fields.get(name) is None:
            valid = [n for n, f in self.fields.items() if f is not None]
            raise ValueError(
                f"{name!r} has no receptive field: it is not a module with a spatial (N, C, "
                f"H, W) output; modules with one: {', '.join(valid)}"
            )
        return self.fields[name]

    def to_dict(self) -> dict:
        """The JSON document of ``convscope summary --json``."""
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "output_shape": list(self.output_shape),
            "layers": [r.to_dict() for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "receptive_field": _fmt_rf(self.receptive_field, "size"),
            "layers_counted": self.layers_counted,
        }

    def __str__(self) -> str:
        from ..tables import format_table

        rows = []
        for r in self.rows:
            d = r.to_dict()
            rf = "" if d["receptive_field"] is None else str(d["receptive_field"])
            rows.append(
                (
                    r.name,
                    r.type,
                    "x".join(map(str, r.output_shape)),
                    f"{r.params:,}",
                    f"{r.macs:,}",
                    rf,
                    "" if d["stride"] is None else str(d["stride"]),
                    "" if d["padding"] is None else str(d["padding"]),
                )
            )
        table = format_table(
            ["layer", "type", "output", "params", "MACs", "RF", "jump", "RF pad"],
            rows,
            align="llrrrrrr",
            title=f"{self.model_name} on a {'x'.join(map(str, self.input_size))} input",
        )
        rf = _fmt_rf(self.receptive_field, "size")
        lines = [
            table,
            "",
            f"total parameters:      {self.total_params:,} ({self.trainable_params:,} trainable)",
            f"multiply-accumulates:  {self.total_macs:,} ({self.total_macs / 1e9:.2f} G) per image",
            f"layers (conv + FC on the deepest path): {self.layers_counted}",
            f"receptive field of the last feature map: {rf if rf is not None else 'n/a'} "
            + ("pixels" if len(self.input_size) == 3 else "time steps"),
        ]
        return "\n".join(lines)


def summary(model, input_size, model_name: str | None = None) -> Summary:
    """Shapes, parameters, MACs and receptive fields of every layer of ``model``.

    Args:
        model (Module): any convscope.nn model.
        input_size (str or tuple): (C, H, W) or 'CxHxW' of one input image; (C, L) or 'CxL' of
            one series for 1-D models (receptive fields are then along L).
        model_name (str, optional): label for the table (default: the model's registry name).

    Returns:
        Summary: ``rows`` (one per leaf layer, plus blocks whose forward merges branches),
        ``total_params``, ``trainable_params``, ``total_macs`` (per image), ``receptive_field``
        (of the last feature map before flatten/global pooling; the maximum over all paths),
        ``layers_counted`` (conv + FC layers on the deepest path: VGG-16 gives 16).

    Raises:
        ValueError: a malformed size, or an input too small for the model (naming the layer
            where the feature map vanishes).

    Example:
        >>> print(convscope.summary(convscope.models.create('lenet5', in_channels=1), '1x28x28'))
    """
    size = parse_input_size(input_size)
    shown = "x".join(map(str, size))
    name = model_name or getattr(model, "model_name", type(model).__name__)
    params = list(model.parameters())
    dtype = params[0].dtype if params else np.float32
    x = Tensor(np.zeros((1,) + size, dtype=dtype), requires_grad=True)
    records, stack, remove = record_modules(model)
    try:
        with enable_grad(), model.evaluating():
            out = model(x)
    except (ValueError, TypeError) as err:
        where = next((r for r in reversed(stack) if r.leaf), stack[-1] if stack else None)
        if where is None:
            raise
        text = str(err)
        if isinstance(err, InputTooSmallError):
            raise ValueError(
                f"input {shown} is too small for {name}: the feature map vanishes at layer "
                f"{where.name} ({where.module._layer_name()}): {text}"
            ) from None
        raise ValueError(
            f"{name} cannot run on a {shown} input: layer {where.name} "
            f"({where.module._layer_name()}) failed: {text}"
        ) from None
    finally:
        remove()
    out = out[0] if isinstance(out, tuple) else out
    infos = analyse_tape(out, [x])
    by_node = {id(i.node): i for i in infos}
    rows = _rows(records, infos, by_node)
    ends = [i for i in infos if i.ends_spatial]
    network_rf = getattr(ends[-1], "input_rf", None) if ends else by_node[id(out.grad_fn)].rf
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    fields = {}
    for rec in records:
        info = _output_info(rec, by_node)[1]
        fields[rec.name] = info.rf if info is not None else None
    if len(size) == 2:  # 1-D: a series is analysed as a height-1 image; report the field along L
        along_l = lambda rf: None if rf is None else (rf[1], rf[1])  # noqa: E731
        for row in rows:
            row.rf = along_l(row.rf)
        fields = {k: along_l(v) for k, v in fields.items()}
        network_rf = along_l(network_rf)
    return Summary(
        name,
        size,
        rows,
        total,
        trainable,
        sum(i.macs for i in infos),
        network_rf,
        max((i.depth for i in infos), default=0),
        tuple(out.shape[1:]),
        fields,
    )


def _output_info(rec, by_node):
    """(the module call's output Tensor or None, the tape node info that made it or None)."""
    out = rec.output[0] if isinstance(rec.output, tuple) else rec.output
    if not isinstance(out, Tensor):
        return None, None
    return out, (by_node.get(id(out.grad_fn)) if out.grad_fn is not None else None)


def _rows(records, infos, by_node):
    """One row per leaf module, plus containers whose own forward recorded ops (e.g. a residual add)."""
    newest_first = sorted(records, key=lambda r: r.first, reverse=True)
    for info in infos:
        seq = info.node.seq
        # the innermost module call that recorded this node: the latest one to start around it
        best = next((rec for rec in newest_first if rec.first < seq < rec.last), None)
        if best is not None:
            best.nodes.append(info)
    rows = []
    for rec in sorted(records, key=lambda r: r.last):
        if rec.name == "(model)" and not rec.leaf:
            continue
        if not rec.leaf and not rec.nodes:
            continue
        out, info = _output_info(rec, by_node)
        if out is None:
            continue
        rf = info.rf if info is not None else None
        if info is None and rec.leaf and not rec.nodes:  # Identity & co: same as its input
            rf = None
        own = sum(p.numel() for p in rec.module.parameters(recurse=False)) if rec.leaf else 0
        rows.append(
            LayerRow(
                rec.name,
                type(rec.module).__name__,
                tuple(out.shape[1:]),
                own,
                sum(i.macs for i in rec.nodes),
                rf,
            )
        )
    return rows
