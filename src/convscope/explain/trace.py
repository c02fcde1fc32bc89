"""The arithmetic of a convolution: ``out[o, y, x] = sum_c <xp[c, window(y, x)], w[o, c]> + b[o]``.

``xp`` is the zero-padded input (CS231n's picture). Values are float64 from the given numbers (a
product of two float32 numbers is exact in float64), summed in one fixed :data:`ORDER`, so each
listed number is exactly the sum of those listed for it. conv2d sums through BLAS in another
order (float32 rounds more): on arbitrary reals they agree to rounding only; where arithmetic is
exact (integers, short binary fractions, the demos) they are bit-identical in float32 and float64.
Padding comes from resolve_padding, output sizes from kernels.geometry's ConvGeometry, the
windows and the zero padding from the reference backend (kernels/reference/conv.py).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..autograd.tensor import Tensor
from ..kernels.geometry import ConvGeometry, window_too_large
from ..kernels.reference import conv as reference_conv
from ..nn.functional._checks import positive_tuple
from ..nn.functional.conv import resolve_padding

ORDER = (
    "float64; per channel the KH*KW taps in row-major order, then channels 0..C_in-1 "
    "left to right, then + bias"
)
AUTO_PRODUCTS = 27  # products=None lists products when C_in*KH*KW <= this


def _array(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value.data if isinstance(value, Tensor) else value)
    except ValueError:
        raise ValueError(
            f"conv_trace: {name} is a ragged nested list; expected a rectangular array of numbers"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"conv_trace: {name} must hold numbers, got dtype {arr.dtype}")
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"conv_trace: {name} is empty or holds NaN/inf; expected finite numbers")
    return arr


def check_inputs(x, weight, bias=None):
    """Validate and convert: returns x (C_in, H, W), weight (C_out, C_in, KH, KW), bias (C_out,) float64."""
    x, weight = _array(x, "input"), _array(weight, "weight")
    x = x[0] if x.ndim == 4 and x.shape[0] == 1 else x
    if x.ndim != 3:
        raise ValueError(
            f"conv_trace: input must be (C_in, H, W) or (1, C_in, H, W), got shape {tuple(x.shape)}"
        )
    if weight.ndim != 4:
        raise ValueError(f"conv_trace: weight must be (C_out, C_in, KH, KW), got {tuple(weight.shape)}")
    if weight.shape[1] != x.shape[0]:
        raise ValueError(
            f"conv_trace: the filters have {weight.shape[1]} channels but the input has "
            f"{x.shape[0]}; expected weight (C_out, {x.shape[0]}, KH, KW), got "
            f"{tuple(weight.shape)}"
        )
    b = np.zeros(weight.shape[0]) if bias is None else _array(bias, "bias")
    if b.shape != (weight.shape[0],):
        raise ValueError(
            f"conv_trace: bias must have one value per filter, shape "
            f"({weight.shape[0]},), got shape {tuple(b.shape)}"
        )
    return x.astype(np.float64), weight.astype(np.float64), b.astype(np.float64)


def _geometry(x, weight, stride, padding, dilation) -> ConvGeometry:
    stride = positive_tuple(stride, 2, "stride", "conv_trace")
    dilation = positive_tuple(dilation, 2, "dilation", "conv_trace")
    size, kernel = x.shape[1:], weight.shape[2:]
    pads = resolve_padding(padding, size, kernel, stride, dilation, "conv_trace")
    geom = ConvGeometry.conv(size, kernel, stride, pads, dilation)
    if not geom.fits:
        raise window_too_large("conv_trace", geom, x.shape)
    return geom


def _accumulate(xp, w_o, b_o, stride, dilation, out_hw):
    """Per-channel inner products (C_in, H_out, W_out), their sums and results (H_out, W_out).

    Only elementwise float64 operations in the fixed ORDER: a value computed alone is
    bit-identical to the same value computed with the whole output."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    c_in, kh, kw = w_o.shape
    per_channel = np.zeros((c_in, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw]
            per_channel += w_o[:, i, j, None, None] * patch  # (C_in, H_out, W_out)
    total = per_channel[0].copy()
    for c in range(1, c_in):
        total += per_channel[c]
    return per_channel, total, total + b_o


def _position(xp, w, b, o, y, x, geom: ConvGeometry, products):
    (dh, dw), pads, size = geom.dilation, geom.padding, geom.in_size
    r0, c0 = y * geom.stride[0], x * geom.stride[1]
    r1, c1 = r0 + geom.span[0], c0 + geom.span[1]
    win = reference_conv.window(xp, y, x, geom)  # (C_in, KH, KW): the lecture's window
    per_channel, total, result = _accumulate(win, w[o], b[o], (1, 1), (1, 1), (1, 1))
    (top, _), (left, _) = pads
    rows, cols = [r0 - top, r1 - top], [c0 - left, c1 - left]
    entry = {
        "o": o,
        "y": y,
        "x": x,
        "window_padded": {"rows": [r0, r1], "cols": [c0, c1], "step": [dh, dw]},
        "window_input": {
            "rows": rows,
            "cols": cols,
            "rows_inside": [max(rows[0], 0), min(rows[1], size[0])],
            "cols_inside": [max(cols[0], 0), min(cols[1], size[1])],
        },
        "channels": [float(v) for v in per_channel[:, 0, 0]],
        "sum": float(total[0, 0]),
        "bias": float(b[o]),
        "result": float(result[0, 0]),
    }
    if products:
        entry.update(window_values=win.tolist(), filter_values=w[o].tolist(), products=(w[o] * win).tolist())
    return entry


def conv_trace(
    x, weight, bias=None, stride=1, padding=0, dilation=1, at=None, products=None, include_output: bool = True
) -> dict:
    """Trace a 2-D convolution (cross-correlation, zero padding) value by value.

    Args:
        x (ndarray or Tensor): (C_in, H, W) or (1, C_in, H, W). weight: (C_out, C_in, KH, KW).
        bias (ndarray, Tensor or None): (C_out,); None counts as zeros.
        stride, dilation (int or (int, int), default 1); padding (int, (int, int), 'valid' or
            'same', default 0): as conv2d ('same' at any stride).
        at ((o, y, x) or None): trace only this output value (default: all of them).
        products (bool or None): also list each window, filter slice and their elementwise
            products; None: when C_in*KH*KW <= 27.
        include_output (bool, default True): also return the whole output volume.
    Shape:
        output (C_out, H_out, W_out), H_out = floor((H + pad_top + pad_bottom - d*(KH-1) - 1)/s) + 1.
    Returns:
        dict (JSON-able): shapes, stride, dilation, padding ``[[top, bottom], [left, right]]``,
        ``positions`` (per value: ``window_padded``/``window_input`` half-open ``[start, stop)``
        row/col ranges, ``channels`` (C_in inner products), ``sum``, ``bias``, ``result``),
        ``output`` (nested list or None), ``dtype`` and ``order`` of the arithmetic.
    Raises:
        ValueError: wrong shapes, channel mismatch, kernel larger than the padded input, bad ``at``.
    Example:
        >>> conv_trace(**demo_example())["output_shape"]
        [2, 3, 3]
    """
    xs, w, b = check_inputs(x, weight, bias)
    geom = _geometry(xs, w, stride, padding, dilation)
    stride, dilation, pads, (ho, wo) = geom.stride, geom.dilation, geom.padding, geom.out_size
    c_out, c_in, kh, kw = w.shape
    at = None if at is None else tuple(int(v) for v in at)
    if at is not None and (len(at) != 3 or not (0 <= at[0] < c_out and 0 <= at[1] < ho and 0 <= at[2] < wo)):
        raise ValueError(
            f"conv_trace: at={at} is outside the output {c_out}x{ho}x{wo}; expected "
            f"(o, y, x) with 0 <= o < {c_out}, 0 <= y < {ho}, 0 <= x < {wo}"
        )
    xp = reference_conv.zero_pad(xs[None], pads)[0]  # (C_in, H + top + bottom, W + left + right)
    products = c_in * kh * kw <= AUTO_PRODUCTS if products is None else products
    where = [at] if at is not None else list(np.ndindex(c_out, ho, wo))
    positions = [_position(xp, w, b, o, y, xx, geom, products) for o, y, xx in where]
    output = (
        None
        if not include_output
        else [_accumulate(xp, w[o], b[o], stride, dilation, (ho, wo))[2].tolist() for o in range(c_out)]
    )
    return {
        "input_shape": list(xs.shape),
        "filter_shape": list(w.shape),
        "output_shape": [c_out, ho, wo],
        "stride": list(stride),
        "dilation": list(dilation),
        "padding": [list(p) for p in pads],
        "padded_shape": list(xp.shape),
        "dtype": "float64",
        "order": ORDER,
        "positions": positions,
        "output": output,
    }


def demo_example() -> dict:
    """CS231n's demo, seeded: x (3, 5, 5) of 0..2, weight (2, 3, 3, 3) of -1..1, bias [1, 0],
    stride 2, pad 1 (float32). ``conv_trace(**demo_example())`` gives a 2x3x3 output."""
    rng = np.random.default_rng(231)
    return {
        "x": rng.integers(0, 3, size=(3, 5, 5)).astype(np.float32),
        "weight": rng.integers(-1, 2, size=(2, 3, 3, 3)).astype(np.float32),
        "bias": np.array([1, 0], dtype=np.float32),
        "stride": 2,
        "padding": 1,
    }


def random_example(
    seed: int = 0, c_in: int = 3, h: int = 5, w: int = 5, c_out: int = 2, k=3, stride=1, padding=0, dilation=1
) -> dict:
    """A seeded example like the demo: x (c_in, h, w) of 0..2, weight (c_out, c_in, KH, KW)
    and bias (c_out,) of -1..1, float32 (readable, and exact in any summation order)."""
    kh, kw = positive_tuple(k, 2, "k", "random_example")
    if not all(isinstance(v, int) and v >= 1 for v in (c_in, h, w, c_out)):
        raise ValueError(
            f"random_example: c_in, h, w, c_out must be positive ints, got {(c_in, h, w, c_out)}"
        )
    rng = np.random.default_rng(seed)
    return {
        "x": rng.integers(0, 3, size=(c_in, h, w)).astype(np.float32),
        "weight": rng.integers(-1, 2, size=(c_out, c_in, kh, kw)).astype(np.float32),
        "bias": rng.integers(-1, 2, size=c_out).astype(np.float32),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }


def load_trace_inputs(path, weights=None, bias=None) -> dict:
    """Read explicit numbers for :func:`conv_trace` from a .json, .npz or .npy file.

    JSON ``{"input": (C, H, W), "weight": (C_out, C_in, KH, KW), "bias": [...], "stride": 1,
    "padding": 0, "dilation": 1}`` or NPZ arrays of the same names (all but input and weight
    optional). A .npy holds one array: then ``path`` is the input and ``weights`` (and
    optionally ``bias``) name .npy files with the filters.

    Returns:
        dict: x (the input), weight, bias, stride, padding, dilation; ``conv_trace(**d)`` runs.
    Raises:
        FileNotFoundError; ValueError: unreadable file, missing keys, wrong shapes, channel mismatch.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy" and weights is None:
        raise ValueError(
            f"{path} is a .npy file, which holds one array (the input); give the filters "
            f"as another .npy (--weights W.npy), or save both with np.savez(file, input=x, "
            f"weight=w, bias=b)"
        )
    if ext not in (".json", ".npz", ".npy"):
        raise ValueError(f"{path}: expected a .json, .npz or .npy file, got {ext or 'no extension'!r}")
    try:
        if ext == ".npy":
            doc = {
                "input": np.load(path, allow_pickle=False),
                "weight": np.load(os.fspath(weights), allow_pickle=False),
            }
            if bias is not None:
                doc["bias"] = np.load(os.fspath(bias), allow_pickle=False)
        elif ext == ".json":
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        else:
            with np.load(path, allow_pickle=False) as archive:
                doc = {k: np.array(archive[k]) for k in archive.files}
    except Exception as e:  # noqa: BLE001 - any parse failure: not a usable file
        raise ValueError(f"{path} is not a readable {ext[1:].upper()} file ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected an object with 'input' and 'weight', got {type(doc).__name__}")
    if "input" not in doc or "weight" not in doc:
        raise ValueError(
            f"{path} has keys {sorted(doc)}; expected input (C, H, W), weight (C_out, C_in, "
            f"KH, KW) and optionally bias, stride, padding, dilation"
        )
    out = {"x": doc["input"], "weight": doc["weight"], "bias": doc.get("bias")}
    for key, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
        value = doc.get(key, default)
        value = value.tolist() if isinstance(value, np.ndarray) else value
        out[key] = tuple(value) if isinstance(value, list) else value
    try:
        x, w, b = check_inputs(out["x"], out["weight"], out["bias"])
        _geometry(x, w, out["stride"], out["padding"], out["dilation"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {str(e).replace('conv_trace: ', '')}") from None
    dtype = np.float64 if np.asarray(out["x"]).dtype == np.float64 else np.float32
    return dict(
        out,
        x=np.asarray(out["x"], dtype),
        weight=np.asarray(out["weight"], dtype),
        bias=None if out["bias"] is None else np.asarray(out["bias"], dtype),
    )


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"


def _term(v: float) -> str:  # negative terms in parentheses: "2 + (-1)"
    return f"({_num(v)})" if v < 0 else _num(v)


def _slice(r, step=1):
    return f"{r[0]}:{r[1]}" + (f":{step}" if step > 1 else "")


def _shape(v):
    return "x".join(map(str, v))


def format_trace(trace: dict, max_positions: int | None = None) -> str:
    """Readable text of a :func:`conv_trace` result: one block per value, then the output grids.

    Args:
        trace (dict): from conv_trace (or its JSON round trip).
        max_positions (int or None): show at most this many blocks (a line says how many are left).
    Returns:
        str: e.g. ``out[1, 2, 2] = sum over c of <xp[c, 4:7, 4:7], w[1, c]> + b[1]`` followed by
        each channel's products, the channel values, their sum, + bias and = result.
    """
    (top, bottom), (left, right) = trace["padding"]
    lines = [
        f"input {_shape(trace['input_shape'])} (C_in x H x W), filters {_shape(trace['filter_shape'])}"
        f" (C_out x C_in x KH x KW), stride {_shape(trace['stride'])}, dilation "
        f"{_shape(trace['dilation'])} -> output {_shape(trace['output_shape'])}",
        f"xp = the input with zero padding top {top}, bottom {bottom}, left {left}, right {right} "
        f"({_shape(trace['padded_shape'])})",
        f"arithmetic: {trace['order']}",
        "",
    ]
    shown = trace["positions"] if max_positions is None else trace["positions"][:max_positions]
    for p in shown:
        lines += _block(p)
    if len(shown) < len(trace["positions"]):
        lines += [
            f"... {len(trace['positions']) - len(shown)} more values not shown "
            f"(pick one with --at o,y,x or at=(o, y, x))",
            "",
        ]
    if trace.get("output") is not None:
        lines.append(f"output volume {_shape(trace['output_shape'])} (float64):")
        for o, grid in enumerate(trace["output"]):
            cells = [[_num(v) for v in row] for row in grid]
            width = max(len(c) for row in cells for c in row)
            lines.append(f"out[{o}] =")
            lines += ["  " + " ".join(c.rjust(width) for c in row) for row in cells]
    return "\n".join(lines).rstrip() + "\n"


def _block(p: dict) -> list:
    o, y, x = p["o"], p["y"], p["x"]
    wp, wi = p["window_padded"], p["window_input"]
    rs, cs = _slice(wp["rows"], wp["step"][0]), _slice(wp["cols"], wp["step"][1])
    inside = wi["rows_inside"] == wi["rows"] and wi["cols_inside"] == wi["cols"]
    lines = [
        f"out[{o}, {y}, {x}] = sum over c of <xp[c, {rs}, {cs}], w[{o}, c]> + b[{o}]",
        f"  window: xp rows {rs}, cols {cs} = input rows {_slice(wi['rows'], wp['step'][0])}, cols "
        f"{_slice(wi['cols'], wp['step'][1])}" + ("" if inside else " (partly zero padding)"),
    ]
    for c, value in enumerate(p["channels"]):
        terms = ""
        if "products" in p and len(np.ravel(p["products"][c])) <= 9:
            pairs = zip(np.ravel(p["window_values"][c]), np.ravel(p["filter_values"][c]), strict=True)
            terms = " + ".join(f"{_term(v)}*{_term(f)}" for v, f in pairs) + " = "
        lines.append(f"  c={c}: {terms}{_num(value)}")
    lines += [
        f"  sum over channels: {' + '.join(_term(v) for v in p['channels'])} = {_num(p['sum'])}",
        f"  + bias b[{o}] = {_num(p['bias'])}",
        f"  = {_num(p['result'])}",
        "",
    ]
    return lines
