"""Explain one value of a trained model's conv layer: its arithmetic and its receptive field.

The layer's real input is captured with a forward hook (the forward stops there), the value
``out[o, y, x]`` is traced with :func:`convscope.explain.trace.conv_trace`, checked against
what the layer computed, and located in the input image with the receptive field that
:func:`convscope.summary` derives from the recorded graph (so branches and pooling count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..nn.modules.conv import Conv2d
from .inputs import image_input, run_with_hooks
from .trace import conv_trace

if TYPE_CHECKING:
    from ..autograd.tensor import Tensor
    from ..kernels.geometry import ReceptiveField
    from ..nn import Module


class _Stop(Exception):
    """Raised by the hook: nothing after the traced layer needs to run."""


def conv_layer_names(model: Module) -> list:
    """Dotted names of every Conv2d in ``model``, in definition order."""
    return [name for name, m in model.named_modules() if name and isinstance(m, Conv2d)]


def find_conv_layer(model: Module, layer: str) -> Conv2d:
    """The Conv2d called ``layer``, or a ValueError listing the model's conv layers."""
    modules = dict(model.named_modules())
    names = ", ".join(conv_layer_names(model)) or "(none)"
    if layer not in modules or not layer:
        raise ValueError(f"unknown layer {layer!r}; expected one of the conv layers: {names}")
    module = modules[layer]
    if not isinstance(module, Conv2d):
        raise ValueError(
            f"layer {layer!r} is a {type(module).__name__}, not a Conv2d; expected one of "
            f"the conv layers: {names}"
        )
    if module.padding_mode != "zeros":
        raise ValueError(
            f"layer {layer!r} pads with {module.padding_mode!r}; only zero padding can be traced"
        )
    return module


def capture_layer(
    model: Module, x: Tensor | npt.NDArray[Any], layer: str
) -> tuple[Conv2d, np.ndarray, np.ndarray]:
    """Run ``model`` on ``x`` (1, C, H, W) up to ``layer``; return (module, its input, its output) arrays."""
    module = find_conv_layer(model, layer)
    seen = {}

    def hook(mod, inputs, output):
        seen["in"], seen["out"] = inputs[0].data.copy(), output.data.copy()
        raise _Stop

    try:
        run_with_hooks(model, x, [(module, hook)])
    except _Stop:
        pass
    if "in" not in seen:
        raise ValueError(f"layer {layer!r} did not run in the model's forward pass")
    return module, seen["in"], seen["out"]


def _clean(v):
    v = float(v)
    return int(v) if v.is_integer() else round(v, 3)


def receptive_box(rf_h: ReceptiveField, rf_w: ReceptiveField, y: int, x: int, hw: tuple) -> dict:
    """Input-image region seen by position (y, x) of a map with fields ``rf_h``, ``rf_w``.

    Rows ``start_h + y*jump_h -/+ (size_h - 1)/2`` (same for columns), as half-open ranges
    ``[first, last + 1)``; ``rows_in_image`` is clipped to the image and ``padding_rows`` counts
    the (before, after) rows that fall into padding.
    """
    out = {
        "size": [_clean(rf_h.size), _clean(rf_w.size)],
        "jump": [_clean(rf_h.jump), _clean(rf_w.jump)],
        "start": [_clean(rf_h.start), _clean(rf_w.start)],
    }
    centre = []
    for key, rf, pos, n in (("rows", rf_h, y, hw[0]), ("cols", rf_w, x, hw[1])):
        first, last = rf.span(pos)
        stop = last + 1
        centre.append(_clean((first + last) / 2))
        out[key] = [_clean(first), _clean(stop)]
        out[f"{key}_in_image"] = [_clean(max(first, 0)), _clean(min(stop, n))]
        out[f"padding_{key}"] = [_clean(max(0, -first)), _clean(max(0, stop - n))]
    out["centre"] = centre
    return out


def trace_model_value(model: Module, x: Tensor | npt.NDArray[Any], layer: str, at: Sequence[int]) -> dict:
    """Trace ``out[o, y, x]`` of conv layer ``layer`` for image ``x`` and find its receptive field.

    Args:
        model (Module): e.g. ``Predictor(ckpt).model``.
        x (ndarray or Tensor): (1, C, H, W), preprocessed as the model expects (normalised).
        layer (str): dotted name of a Conv2d, e.g. 'features.conv2'.
        at ((o, y, x)): channel and position in that layer's output.

    Returns:
        dict: ``layer``, ``layer_repr``, ``at``, shapes, ``trace`` (conv_trace of the one value on
        the layer's actual input, weight and bias), ``value`` (float64), ``layer_output`` (what the
        layer computed), ``difference``, ``error_bound`` (float rounding bound of the layer's sum)
        and ``receptive_field`` (see :func:`receptive_box`).

    Raises:
        ValueError: unknown layer or not a Conv2d (listing the conv layers), ``at`` out of range.
        RuntimeError: the trace disagrees with the layer beyond rounding (a bug).
    """
    from ..analysis import summary

    image = image_input(model, x)
    module, inp, out = capture_layer(model, image, layer)
    c_out, ho, wo = out.shape[1:]
    try:
        o, y, xx = (int(v) for v in at)
    except (TypeError, ValueError):
        raise ValueError(f"at must be (o, y, x), got {at!r}") from None
    if not (0 <= o < c_out and 0 <= y < ho and 0 <= xx < wo):
        raise ValueError(
            f"at=({o}, {y}, {xx}) is outside the output of {layer} ({c_out}x{ho}x{wo}); "
            f"expected 0 <= o < {c_out}, 0 <= y < {ho}, 0 <= x < {wo}"
        )
    weight = module.weight.data
    bias = None if module.bias is None else module.bias.data[o : o + 1]
    c_g = weight.shape[1]
    g = o // (c_out // module.groups)  # the group of filter o sees input channels g*c_g..(g+1)*c_g-1
    trace = conv_trace(
        inp[0, g * c_g : (g + 1) * c_g],
        weight[o : o + 1],
        bias,
        module.stride,
        module.padding,
        module.dilation,
        at=(0, y, xx),
        include_output=False,
    )
    pos = trace["positions"][0]
    pos["o"] = o  # the one filter traced is filter o of the layer
    trace.update(filter_shape=list(weight.shape), output_shape=[c_out, ho, wo])
    wp = pos["window_padded"]
    padded = np.pad(
        np.asarray(inp[0, g * c_g : (g + 1) * c_g], np.float64),
        ((0, 0),) + tuple(map(tuple, trace["padding"])),
    )  # (C_in/groups, Hp, Wp)
    window = padded[
        :, wp["rows"][0] : wp["rows"][1] : wp["step"][0], wp["cols"][0] : wp["cols"][1] : wp["step"][1]
    ]
    # |sum - fl(sum)| <= gamma_n * sum|terms| for any summation order (Higham, Thm 3.1)
    magnitude = float(np.sum(np.abs(window * weight[o].astype(np.float64)))) + abs(pos["bias"])
    n = window.size + 1
    u = np.finfo(out.dtype).eps / 2
    bound = n * u / (1 - n * u) * magnitude + 2 * n * 2.0**-53 * magnitude
    layer_value = float(out[0, o, y, xx])
    diff = abs(layer_value - pos["result"])
    if diff > bound:
        raise RuntimeError(
            f"trace of {layer} at {(o, y, xx)} gives {pos['result']!r} but the layer "
            f"computed {layer_value!r} (difference {diff:.3g} > rounding bound {bound:.3g})"
        )
    _, c, h, w = image.shape
    fields = summary(model, (c, h, w)).fields.get(layer)
    rf = None if fields is None else receptive_box(fields[0], fields[1], y, xx, (h, w))
    return {
        "layer": layer,
        "layer_repr": repr(module),
        "at": [o, y, xx],
        "input_shape": [c, h, w],
        "layer_input_shape": list(inp.shape[1:]),
        "layer_output_shape": [c_out, ho, wo],
        "groups": module.groups,
        "trace": trace,
        "value": pos["result"],
        "layer_output": layer_value,
        "difference": diff,
        "error_bound": bound,
        "receptive_field": rf,
    }


def format_model_trace(result: dict) -> str:
    """Text for :func:`trace_model_value`: the arithmetic, the check and the receptive field."""
    from .trace import format_trace

    o, y, x = result["at"]
    lines = [
        f"{result['layer']}: {result['layer_repr']}",
        f"image {'x'.join(map(str, result['input_shape']))} -> layer input "
        f"{'x'.join(map(str, result['layer_input_shape']))} -> layer output "
        f"{'x'.join(map(str, result['layer_output_shape']))}; explaining out[{o}, {y}, {x}]",
        "",
    ]
    text = format_trace(result["trace"])
    lines.append(text.rstrip())
    lines.append(
        f"  the layer computed {result['layer_output']:.9g} (float32); the trace gives "
        f"{result['value']:.17g}; difference {result['difference']:.3g} <= float32 rounding "
        f"bound {result['error_bound']:.3g}"
    )
    rf = result["receptive_field"]
    if rf is not None:
        (r0, r1), (c0, c1) = rf["rows"], rf["cols"]
        (i0, i1), (j0, j1) = rf["rows_in_image"], rf["cols_in_image"]
        pad = rf["padding_rows"] + rf["padding_cols"]
        lines += [
            "",
            f"receptive field in the input image: {rf['size'][0]}x{rf['size'][1]} pixels "
            f"(jump {rf['jump'][0]}x{rf['jump'][1]}), centred at row {rf['centre'][0]}, col "
            f"{rf['centre'][1]}",
            f"  rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1}; inside the image: rows {i0}..{i1 - 1}, "
            f"cols {j0}..{j1 - 1}"
            + (
                ""
                if not any(pad)
                else f"; in padding: {pad[0]} rows above, {pad[1]} below, {pad[2]} cols left, {pad[3]} right"
            ),
        ]
    return "\n".join(lines) + "\n"
