"""The lecture's hand calculations, each formula shown with its numbers filled in.

Window numbers (output size, 'same' padding, effective kernel, receptive field) all come from
:mod:`convscope.kernels.geometry`; this module counts parameters and MACs and writes the working
out. Each ``*_calc`` returns a JSON-able dict whose ``"lines"`` are the working.
"""

from __future__ import annotations

import re
from collections import Counter

from ..kernels import geometry as G


class CalcUsageError(ValueError):
    """A malformed calculator input: what is wrong, what was expected, what was received."""


def _num(x) -> str:
    """12 -> '12', 1234 -> '1,234', 53.25 -> '53.25'."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:.4f}".rstrip("0")


def _hw(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def parse_ints(value, name: str, expected: str, lengths, minimum: int = 1) -> tuple:
    """Whole numbers from '32x32x3' (or from an int or a tuple of ints): the one size parser.

    Raises:
        CalcUsageError (a ValueError): a count not in ``lengths``, non-integers, or a number
            below ``minimum``; the message names ``name`` and ``expected``.
    """
    text = "x".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    parts = re.split(r"\s*[x×]\s*", text.strip().lower())
    if len(parts) not in lengths or not all(re.fullmatch(r"-?\d+", p) for p in parts):
        raise CalcUsageError(f"{name} is malformed: expected {expected}, got {value!r}")
    if min(int(p) for p in parts) < minimum:
        raise CalcUsageError(
            f"{name} has a number below {minimum}: expected {expected} with whole numbers "
            f">= {minimum}, got {value!r}"
        )
    return tuple(int(p) for p in parts)


def parse_hwc(text) -> tuple[int, int, int]:
    """Parse a volume 'HxWxC' into (H, W, C); 'HxW' is a one-channel image (C = 1).

    Raises CalcUsageError on '32x32x', 'abc', '0x3x3' or negative numbers. Example:
        >>> parse_hwc('32x32x3'), parse_hwc('28x28')
        ((32, 32, 3), (28, 28, 1))
    """
    values = parse_ints(text, "input", "HxWxC such as 32x32x3 (or HxW for one channel)", (2, 3))
    return values if len(values) == 3 else values + (1,)


def parse_chw(text, name: str = "--input") -> tuple[int, int, int]:
    """Parse a volume 'CxHxW' (PyTorch's order, as ``summary --input``) into (C, H, W); 'HxW' is
    one channel. Raises CalcUsageError as :func:`parse_ints` does.

    Example:
        >>> parse_chw('3x32x32'), parse_chw('28x28')
        ((3, 32, 32), (1, 28, 28))
    """
    values = parse_ints(text, name, "CxHxW such as 3x32x32 (or HxW for one channel)", (2, 3))
    return values if len(values) == 3 else (1,) + values


def chw_order_warning(chw, given: str, name: str = "--input") -> str | None:
    """A 'did you mean' line when a C x H x W volume looks written in H x W x C order.

    That is when the channel count is at least both spatial sizes and the width is the smallest
    number (32x32x3, 224x224x64); 64x56x56 or 3x224x224 pass silently. A 1-D size (C, L) has
    no such ambiguity and never warns.
    """
    if len(chw) != 3:
        return None
    c, h, w = chw
    if c >= h and c > w and h > w:
        return (
            f"warning: {name} {given} is read as C x H x W: {c} channels of {h}x{w}; did you mean "
            f"{w}x{c}x{h}? (the lecture's H x W x C order is --hwc {c}x{h}x{w})"
        )
    return None


def parse_size(value, name: str = "kernel", minimum: int = 1, expected: str = "5 or 5x3") -> tuple[int, int]:
    """'5' or 5 -> (5, 5); '5x3' or (5, 3) -> (5, 3) (height x width). Raises CalcUsageError
    (whose message shows ``expected`` as the form to use)."""
    values = parse_ints(value, name, expected, (1, 2), minimum)
    return values * 2 if len(values) == 1 else values


def parse_layer(spec) -> dict:
    """One layer of a stack -> dict(spec, kind, kernel, stride): '3x3', '3x3/2' (stride 2), 'pool2x2/2'.

    A conv's stride defaults to 1, a pool's to its kernel (as in PyTorch). Example:
        >>> parse_layer('3x3/2')['stride'], parse_layer('pool2')['stride']
        ([2, 2], [2, 2])
    """
    n = r"([1-9]\d*)"  # a whole number >= 1
    m = re.fullmatch(
        rf"((?:max|avg)?pool)?{n}(?:x{n})?(?:/{n})?", str(spec).strip().lower().replace("×", "x")
    )
    if not m:
        raise CalcUsageError(
            f"a layer must look like 3x3, 3x3/2, 1x1 or pool2x2/2 (numbers >= 1), got {spec!r}"
        )
    k = [int(m[2]), int(m[3] or m[2])]
    s = [int(m[4])] * 2 if m[4] else (list(k) if m[1] else [1, 1])
    return {"spec": str(spec).strip(), "kind": "pool" if m[1] else "conv", "kernel": k, "stride": s}


def _fit(n, k, s, pb, pa, d, ceil_mode=False) -> dict:
    """Output length from geometry, plus what the windows leave uncovered at the end."""
    out = G.conv_output_size(n, k, s, pb, d, ceil_mode=ceil_mode, padding_after=pa)
    end = (out - 1) * s + G.effective_kernel(k, d) if out > 0 else 0  # last window's end (padded coords)
    return {"out": out, "leftover": pb + n + pa - end, "dropped_input": max(0, pb + n - end)}


def _numbers(n, k, s, pb, pa, d) -> str:
    """'(224 - 11 + 2*0)/4': the filled-in numerator and stride of the output-size formula."""
    return f"({n} - {G.effective_kernel(k, d)} + {f'2*{pb}' if pb == pa else f'{pb} + {pa}'})/{s}"


def _formula(lhs, L, n, k, s, pb, pa, d, out, rounding="") -> str:
    """'W_out = (W - F + 2P)/S + 1 = (32 - 5 + 2*2)/1 + 1 = 32'; with floor()/ceil() when not exact."""
    sym = f"({L} - {'F' if d == 1 else 'F_eff'} + {'2P' if pb == pa else 'P_before + P_after'})/S"
    if not rounding:
        return f"{lhs} = {sym} + 1 = {_numbers(n, k, s, pb, pa, d)} + 1 = {out}"
    q = (n + pb + pa - G.effective_kernel(k, d)) / s  # shown only; the result is geometry's
    note = (
        " (PyTorch drops a last window starting in the padding)" if rounding == "ceil" and out - 1 < q else ""
    )
    return (
        f"{lhs} = {rounding}({sym}) + 1 = {rounding}({_numbers(n, k, s, pb, pa, d)}) + 1 = "
        f"{rounding}({_num(q)}) + 1 = {out}{note}"
    )


def _suggest(label, n, k, s, pb, pa, d) -> list[dict]:
    """Nearest input sizes, paddings and strides (each way) that fit exactly, verified with geometry."""

    def near(x):  # x-1..x-S and x+1..x+S cover every remainder mod S: one exact value each way
        return range(x - 1, x - s - 1, -1), range(x + 1, x + s + 1)

    options = [[("input", m, s, pb, pa) for m in r] for r in near(n)]
    options += [[("padding", n, s, t // 2, t - t // 2) for t in r] for r in near(pb + pa)]
    options += [
        [("stride", n, t, pb, pa) for t in r]  # a stride beyond F_eff would skip pixels
        for r in (range(s - 1, 0, -1), range(s + 1, G.effective_kernel(k, d) + 1))
    ]
    found = []
    for candidates in options:
        for change, n2, s2, b, a in candidates:
            fit = _fit(n2, k, s2, b, a, d)
            if min(n2, b + 1, fit["out"]) < 1 or fit["leftover"]:
                continue
            what = {
                "input": f"input {label} = {n2}",
                "stride": f"stride S = {s2}",
                "padding": f"padding P = {b}" if a == b else f"padding P_before = {b}, P_after = {a}",
            }[change]
            found.append(
                {
                    "change": change,
                    "input": n2,
                    "stride": s2,
                    "padding": [b, a],
                    "output": fit["out"],
                    "text": f"{what}: {_numbers(n2, k, s2, b, a, d)} + 1 = {fit['out']}",
                }
            )
            break  # the nearest exact value in this direction
    return found


def _windows(hw, k, s, pads, d, ceil_mode=False, suggest=False) -> dict:
    """Output H x W, formula lines, fit notes and (optionally) exact-fit suggestions per axis."""
    cfg = [(hw[i], k[i], s[i], pads[i][0], pads[i][1], d[i]) for i in range(2)]
    groups = [("HW", cfg[1])] if cfg[0] == cfg[1] else [("H", cfg[0]), ("W", cfg[1])]
    axes, lines, tips, found_all = {}, [], [], []
    for letters, (n, kk, ss, pb, pa, dd) in groups:
        L, unit = letters[-1], " and ".join({"H": "row(s)", "W": "column(s)"}[x] for x in letters)
        ext = G.effective_kernel(kk, dd)
        if dd > 1:
            lines.append(
                f"F_eff = d*(F - 1) + 1 = {dd}*({kk} - 1) + 1 = {ext}" + f" ({L})" * (len(groups) > 1)
            )
        fit, floor = _fit(n, kk, ss, pb, pa, dd, ceil_mode), _fit(n, kk, ss, pb, pa, dd)
        if fit["out"] < 1:
            raise CalcUsageError(
                f"the window does not fit: expected {L} + padding >= F_eff = {ext}, "
                f"got {L} = {n} with padding {pb} + {pa}"
            )
        exact = floor["leftover"] == 0
        lines.append(
            _formula(
                " = ".join(f"{x}_out" for x in letters),
                L,
                n,
                kk,
                ss,
                pb,
                pa,
                dd,
                fit["out"],
                "" if exact else ("ceil" if ceil_mode else "floor"),
            )
        )
        q = f"{_numbers(n, kk, ss, pb, pa, dd)} = {_num((n + pb + pa - ext) / ss)}"
        if exact and ss > 1:
            lines.append(f"{q} is exact: the windows tile the padded input with nothing left over")
        elif not exact and not ceil_mode:
            lines.append(
                f"{q} is not an integer: floor() drops the last {floor['dropped_input']} {unit} of the "
                "input (they are never covered by a window)"
                if floor["dropped_input"]
                else f"{q} is not an integer, but only padding is left over: floor() skips the last "
                f"{floor['leftover']} padded {unit}; every input pixel is covered"
            )
        if suggest and not exact:
            found = _suggest(" = ".join(letters), n, kk, ss, pb, pa, dd)
            found_all += [dict(f, axis=letters) for f in found]
            tips += [f"to fit {' and '.join(letters)} exactly, change one of:"] + [
                f"  {f['text']}" for f in found
            ]
        axes.update(
            {
                x: dict(
                    input=n,
                    effective_kernel=ext,
                    output=fit["out"],
                    exact=exact,
                    floor_output=floor["out"],
                    ceil_output=_fit(n, kk, ss, pb, pa, dd, True)["out"],
                    dropped_input=floor["dropped_input"],
                )
                for x in letters
            }
        )
    return {
        "hw": (axes["H"]["output"], axes["W"]["output"]),
        "axes": axes,
        "lines": lines,
        "tips": tips,
        "exact": all(a["exact"] for a in axes.values()),
        "suggestions": found_all,
    }


def conv_calc(
    input_hwc=(32, 32, 3), filters=10, kernel=5, stride=1, padding=0, dilation=1, groups=1, bias=True
) -> dict:
    """Output volume, parameters and MACs of one conv layer, with the working.

    Args: input_hwc (tuple or str, default (32, 32, 3)): H x W x C; filters (int, default 10): K;
        kernel, stride, dilation (int, (h, w) or '5x3'; defaults 5, 1, 1); padding (int, (ph, pw),
        'same' or 'valid', default 0); groups (int, default 1): each filter sees C/groups channels; bias.
    Returns: dict with input [C, H, W], output [K, H_out, W_out] (C x H x W, as --input), params,
        weights, biases, macs, output_volume, axes (per-axis
        fit), exact, suggestions (exact-fit alternatives, all verified), lines. Raises CalcUsageError.
    Example:
        >>> r = conv_calc((32, 32, 3), filters=10, kernel=5, padding=2); r["output"], r["params"]
        ([10, 32, 32], 760)
    """
    (H, W, C), notes = parse_hwc(input_hwc), []
    k, s, d = parse_size(kernel, "kernel"), parse_size(stride, "stride"), parse_size(dilation, "dilation")
    K, g = filters, groups
    if not (isinstance(K, int) and K >= 1 and isinstance(g, int) and g >= 1) or C % g or K % g:
        raise CalcUsageError(
            f"filters K and groups must be positive ints with groups dividing both C and K, "
            f"got C={C}, K={K}, groups={g}"
        )
    mode = padding.strip().lower() if isinstance(padding, str) else None
    if mode == "same":
        pads = tuple(G.same_padding((H, W)[i], k[i], s[i], d[i]) for i in range(2))
        notes.append(
            "padding 'same' (TensorFlow's rule, any stride): H_out = ceil(H/S), W_out = ceil(W/S) with "
            f"(P_before, P_after) = {pads[0]}" + (f" for H, {pads[1]} for W" if pads[0] != pads[1] else "")
        )
    else:
        pads = tuple(
            (p, p) for p in parse_size(0 if mode == "valid" else padding, "padding (or same/valid)", 0)
        )
    win = _windows((H, W), k, s, pads, d, suggest=True)
    Ho, Wo = win["hw"]
    FF, FFn = ("F*F" if k[0] == k[1] else "FH*FW"), f"{k[0]}*{k[1]}"
    Cs, Cn = ("C", str(C)) if g == 1 else ("(C/g)", f"({C}/{g})")
    per_out = k[0] * k[1] * (C // g)  # MACs of one output number
    weights, biases = per_out * K, (K if bias else 0)
    params, macs, volume = weights + biases, Ho * Wo * K * per_out, Ho * Wo * K
    pad_text = "x".join(dict.fromkeys(str(a) if a == b else f"{a}+{b}" for a, b in pads))
    lines = [
        f"conv: input {C}x{H}x{W} (C x H x W), {K} filters {k[0]}x{k[1]}, stride {_hw(s)}, padding {pad_text}"
        + (f", dilation {_hw(d)}" if d != (1, 1) else "")
        + (f", groups {g}" if g > 1 else "")
    ]
    lines += notes + win["lines"] + [f"output: {K}x{Ho}x{Wo} (C x H x W; depth C = number of filters K)"]
    lines.append(
        f"params = ({FF}*{Cs} + 1)*K = ({FFn}*{Cn} + 1)*{K} = {params:,} ({weights:,} weights + {K} biases)"
        if bias
        else f"params = {FF}*{Cs}*K = {FFn}*{Cn}*{K} = {params:,} (no bias)"
    )
    lines += [
        f"weights are shared across all {Ho}*{Wo} positions, so the count does not depend on the input size",
        f"MACs = H_out*W_out*K*({FF}*{Cs}) = {Ho}*{Wo}*{K}*({FFn}*{Cn}) = {Ho}*{Wo}*{K}*{per_out} = {macs:,}",
        f"output volume = H_out*W_out*K = {Ho}*{Wo}*{K} = {volume:,} numbers"
        + f" ({4 * volume:,} bytes as float32)",
    ]
    return {
        "calc": "conv",
        "input": [C, H, W],
        "filters": K,
        "kernel": list(k),
        "stride": list(s),
        "padding": [list(p) for p in pads],
        "dilation": list(d),
        "groups": g,
        "bias": bool(bias),
        "output": [K, Ho, Wo],
        "params": params,
        "weights": weights,
        "biases": biases,
        "macs": macs,
        "macs_per_output": per_out,
        "output_volume": volume,
        "axes": win["axes"],
        "exact": win["exact"],
        "suggestions": win["suggestions"],
        "lines": lines + win["tips"],
    }


def pool_calc(
    input_hwc=(224, 224, 64), kernel=2, stride=None, padding=0, dilation=1, ceil_mode=False, kind="max"
) -> dict:
    """Output volume of a max/average pool, with the working, the ceil_mode effect and the fraction kept.

    Args: input_hwc (tuple or str, default (224, 224, 64)): H x W x C; kernel, stride, padding,
        dilation (int, (h, w) or '3x2'; stride None = kernel); ceil_mode (bool, default False): round
        the output size up (PyTorch's rule); kind ('max' or 'avg').
    Returns: dict with input [C, H, W], output [C, H_out, W_out], params (0), kept (fraction of
        activations), axes, lines.
    Example:
        >>> pool_calc((224, 224, 64), kernel=2, stride=2)["output"]
        [64, 112, 112]
    """
    H, W, C = parse_hwc(input_hwc)
    k, d = parse_size(kernel, "kernel"), parse_size(dilation, "dilation")
    s, p = (k if stride is None else parse_size(stride, "stride")), parse_size(padding, "padding", 0)
    if kind not in ("max", "avg") or any(2 * p[i] > G.effective_kernel(k[i], d[i]) for i in range(2)):
        raise CalcUsageError(
            f"pool needs kind 'max' or 'avg' and padding at most half the kernel (PyTorch's "
            f"rule), got kind {kind!r}, padding {_hw(p)}, kernel {_hw(k)}"
        )
    win = _windows((H, W), k, s, ((p[0], p[0]), (p[1], p[1])), d, ceil_mode)
    (Ho, Wo), axes, kept = win["hw"], win["axes"], win["hw"][0] * win["hw"][1] / (H * W)
    lines = [
        f"{kind} pool {k[0]}x{k[1]}, stride {_hw(s)}, padding {_hw(p)}"
        + (f", dilation {_hw(d)}" if d != (1, 1) else "")
        + (", ceil_mode" if ceil_mode else "")
        + f" on {C}x{H}x{W} (C x H x W)"
    ]
    lines += win["lines"] + [
        f"output: {C}x{Ho}x{Wo}: pooling works on each channel separately, so the depth stays {C}",
        f"params = 0: the {'max' if kind == 'max' else 'average'} rule is fixed, there is nothing to learn",
        f"each output is the {kind} of {k[0]}*{k[1]} = {k[0] * k[1]} inputs; kept {Ho}*{Wo} of {H}*{W} "
        f"activations per channel = {100 * kept:.4g}%",
    ]
    other = [axes[x]["floor_output" if ceil_mode else "ceil_output"] for x in "HW"]
    if other != [Ho, Wo]:
        lines.append(
            f"ceil_mode={not ceil_mode} would give {other[0]}x{other[1]} (ceil keeps the partial last window)"
        )
    return {
        "calc": "pool",
        "kind": kind,
        "input": [C, H, W],
        "kernel": list(k),
        "stride": list(s),
        "padding": list(p),
        "dilation": list(d),
        "ceil_mode": bool(ceil_mode),
        "output": [C, Ho, Wo],
        "params": 0,
        "kept": kept,
        "output_volume": Ho * Wo * C,
        "axes": axes,
        "exact": win["exact"],
        "lines": lines,
    }


def _stack(specs, C: int, who: str) -> dict:
    """Receptive field after each layer (geometry's step); parameters and MACs as multiples of C^2."""
    rf: tuple[G.ReceptiveField, ...] = (G.ReceptiveField(), G.ReceptiveField())  # along H, W
    rows: list[dict] = []
    lines: list[str] = []
    for i, L in enumerate(specs, 1):
        new = tuple(G.receptive_field_step(rf[a], L["kernel"][a], L["stride"][a]) for a in range(2))
        steps = [
            f"RF = {_num(rf[a].size)} + ({L['kernel'][a]} - 1)*{_num(rf[a].jump)} = {_num(new[a].size)}"
            + (
                f", jump {_num(rf[a].jump)}*{L['stride'][a]} = {_num(new[a].jump)}"
                if (rf[a].jump, L["stride"][a]) != (1, 1)
                else ""
            )
            for a in range(2)
        ]
        lines.append(
            f"{who} layer {i} ({L['spec']} {L['kind']}): "
            + (steps[0] if steps[0] == steps[1] else f"H: {steps[0]}; W: {steps[1]}")
        )
        rows.append(dict(L, rf=[new[0].size, new[1].size], jump=[new[0].jump, new[1].jump]))
        rf = new
    convs = [r for r in rows if r["kind"] == "conv"]
    counts = Counter(tuple(r["kernel"]) for r in convs)
    coef = sum(kh * kw * n for (kh, kw), n in counts.items())
    sym = " + ".join(f"{kh}*{kw}*C*C" if n == 1 else f"{n}*({kh}*{kw}*C*C)" for (kh, kw), n in counts.items())
    return {
        "name": " -> ".join(L["spec"] for L in specs),
        "layers": rows,
        "rf": [rf[0].size, rf[1].size],
        "rf_text": [_hw([_num(v) for v in r["rf"]]) for r in rows],
        "param_coef": coef,
        "params": coef * C * C,
        "params_formula": f"{sym or '0'} = {coef}*C^2 = {coef}*{C}^2 = {coef * C * C:,}",
        "nonlinearities": len(convs),
        "macs_per_position": coef * C * C,
        "macs_formula": f"{coef}*C^2 = {coef * C * C:,}",
        "lines": lines,
    }


def stack_calc(layers=("3x3", "3x3", "3x3"), vs="7x7", channels=64, strides=None) -> dict:
    """Receptive field, parameters, non-linearities and MACs of a stack of convs versus another.

    Every conv maps C channels to C channels; biases are excluded (they add C per conv); MACs are
    per position of each layer's own output (one output position of the stack at stride 1).
    Args: layers (list of str or 'a,b,c', default three '3x3'): specs for :func:`parse_layer`;
        vs (same forms or None, default '7x7'): what to compare with; channels (int, default 64): C;
        strides (list or 'a,b,c', default None): per-layer strides overriding the specs'.
    Returns: dict with stack and vs (rf, params, nonlinearities, macs_per_position, layers), equal_rf, lines.
    Example:
        >>> r = stack_calc(); r["stack"]["rf"], r["stack"]["params"], r["vs"]["params"]
        ([7, 7], 110592, 200704)
    """

    def specs(value):  # '3x3,3x3' or ['3x3', '3x3']
        return [parse_layer(x) for x in (value.split(",") if isinstance(value, str) else value)]

    if not isinstance(channels, int) or channels < 1:
        raise CalcUsageError(f"channels must be a positive int, got {channels!r}")
    mine = specs(layers)
    strides = strides.split(",") if isinstance(strides, str) else strides
    if strides is not None and len(strides) != len(mine):
        raise CalcUsageError(f"strides must give one stride per layer ({len(mine)}), got {strides!r}")
    for spec, st in zip(mine, strides or [], strict=False):  # no strides: no checks
        spec["stride"] = list(parse_size(st, "stride"))
    a, b = _stack(mine, channels, "stack"), (None if vs is None else _stack(specs(vs), channels, "vs"))
    equal = b is not None and a["rf"] == b["rf"]

    def both(key, prefix):
        return f"{prefix}{a[key]}" + (f" vs {b[key]}" if b else "")

    lines = [both("name", "stack ") + f", C = {channels} channels in and out of every conv"]
    lines += (
        a["lines"]
        + (b["lines"] if b else [])
        + [
            f"receptive field: {' -> '.join(a['rf_text'])}"
            + (f" vs {b['rf_text'][-1]}: {'equal' if equal else 'different'}" if b else ""),
            both("params_formula", "params (biases excluded): "),
        ]
    )
    if b and a["params"] and b["params"]:
        lines.append(
            f"the stack has {100 * a['params'] / b['params']:.1f}% of the parameters of {b['name']} "
            f"({b['name']} has {b['params'] / a['params']:.2f}x as many)"
        )
    lines += [
        both("nonlinearities", "non-linearities (a ReLU after every conv): "),
        both("macs_formula", "MACs per output position: "),
    ]
    return {"calc": "stack", "channels": channels, "stack": a, "vs": b, "equal_rf": equal, "lines": lines}
