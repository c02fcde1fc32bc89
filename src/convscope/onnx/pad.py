"""The Pad op's emitter: crops, then constant / reflect / edge / circular padding.

convscope's pad (torch.nn.functional.pad's semantics) first crops by negative pads and then
pads the cropped map, so the emitter writes a Slice for the crop and a Pad for the rest.
Circular padding is ONNX's ``wrap`` mode from opset 19; below that it is written as a
Slice + Concat per padded axis (the wrapped-around strips put on either side).
"""

from __future__ import annotations

import numpy as np

ONNX_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def emit_pad(e, node) -> str:
    """Write the recorded pad node; returns its output value name."""
    x, pads, mode, value = node.inputs
    ndim = x.ndim
    pairs = {ndim - 1 - i: (int(pads[2 * i]), int(pads[2 * i + 1])) for i in range(len(pads) // 2)}
    if 0 in pairs and any(pairs[0]) and e.dynamic_batch:
        e.fail("padding the batch dimension cannot be exported with a dynamic batch size")
    out = e.value(x)
    shape = list(x.shape)
    crop = {a: (max(-b, 0), max(-f, 0)) for a, (b, f) in pairs.items() if b < 0 or f < 0}
    if crop:
        e.bakes_size("a crop by negative padding")
        axes = sorted(crop)
        starts = [crop[a][0] for a in axes]
        ends = [shape[a] - crop[a][1] for a in axes]
        ins = [out, e.b.ints(starts, "starts"), e.b.ints(ends, "ends"), e.b.ints(axes, "axes")]
        out = e.one("Slice", ins)
        for a in axes:
            shape[a] -= sum(crop[a])
    grow = {a: (max(b, 0), max(f, 0)) for a, (b, f) in pairs.items() if b > 0 or f > 0}
    if not grow:
        return out if crop else e.one("Identity", [out])
    if mode == "circular" and e.opset < 19:
        e.bakes_size("circular padding written as slices")
        for a in sorted(grow):
            before, after = grow[a]
            parts = []
            if before:
                parts.append(_slice(e, out, a, shape[a] - before, shape[a]))
            parts.append(out)
            if after:
                parts.append(_slice(e, out, a, 0, after))
            out = e.one("Concat", parts, axis=a)
        return out
    onnx_pads = [grow.get(a, (0, 0))[0] for a in range(ndim)] + [grow.get(a, (0, 0))[1] for a in range(ndim)]
    ins = [out, e.b.ints(onnx_pads, "pads")]
    if mode == "constant":
        ins.append(e.b.const(value, x.dtype, "pad_value"))
    return e.one("Pad", ins, mode=ONNX_MODES[mode])


def _slice(e, value: str, axis: int, start: int, end: int) -> str:
    ins = [value, e.b.ints([start], "starts"), e.b.ints([end], "ends"), e.b.ints([axis], "axes")]
    return e.one("Slice", ins)


__all__ = ["emit_pad", "ONNX_MODES", "np"]
