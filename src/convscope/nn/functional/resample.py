"""pad and interpolate (torch.nn.functional names and defaults)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...autograd.tensor import Tensor
from ...ops import pool as P
from ..common_types import SizeArg
from ._checks import Layer, check_float, check_tensor
from ._empty import empty_result, is_empty

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_impl(input, pad, mode, value, layer):
    check_tensor(input, layer)
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(isinstance(p, int) for p in pad):
        raise ValueError(
            f"{layer}: pad must be a tuple of an even number of ints (left, right, top, "
            f"bottom, ...), got {pad!r}"
        )
    if len(pad) // 2 > input.ndim:
        raise ValueError(
            f"{layer}: pad {tuple(pad)} covers {len(pad) // 2} dims but the input has only {input.ndim}"
        )
    if mode not in PAD_MODES:
        raise ValueError(f"{layer}: mode must be one of {PAD_MODES}, got {mode!r}")
    if mode != "constant":
        if value:
            raise ValueError(
                f"{layer}: mode {mode!r} takes no fill value; expected value None or 0 (or mode "
                f"'constant'), got {value!r}"
            )
        return _pad_border_mode(input, tuple(pad), mode, layer)
    for d in range(len(pad) // 2):
        if input.shape[-1 - d] + pad[2 * d] + pad[2 * d + 1] < 0:
            raise ValueError(
                f"{layer}: pad {tuple(pad)} crops more than the input of shape {tuple(input.shape)} has"
            )
    return P.PadOp.apply(input, tuple(pad), mode, float(value))


def _pad_border_mode(input, pad: tuple, mode: str, layer: str):
    """'reflect', 'replicate', 'circular' with PyTorch's rules; negative amounts crop.

    PyTorch reads reflect/replicate borders from the whole input and then drops the cropped
    positions (``pad([0..4], (-1, 2))`` gives ``[1, 2, 3, 4, 3, 2]``), but crops first for
    circular (``[1, 2, 3, 4, 1, 2]``), which is what the circular kernel does.
    """
    dims = len(pad) // 2
    if input.ndim - dims not in (1, 2):
        raise ValueError(
            f"{layer}: mode {mode!r} pads the last 1-3 dims of a batched (N, C, ...) "
            f"or unbatched (C, ...) input; got pad {pad} for input of shape "
            f"{tuple(input.shape)}"
        )
    kept = input.shape[1:] if input.ndim - dims == 2 else input.shape
    if 0 in kept:
        raise ValueError(
            f"{layer}: mode {mode!r} needs non-empty dims after the batch dim, got input of shape "
            f"{tuple(input.shape)} (only N may be 0)"
        )
    for d in range(dims):
        size = input.shape[-1 - d]
        before, after = pad[2 * d], pad[2 * d + 1]
        out = size + before + after
        if out < 1:
            raise ValueError(
                f"{layer}: pad ({before}, {after}) leaves nothing of a dim of size {size} "
                f"(input of shape {tuple(input.shape)}); expected an output size of at least 1"
            )
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(
                f"{layer}: reflect padding {max(before, after)} must be smaller than "
                f"the padded dimension ({size}) of input of shape {tuple(input.shape)}"
            )
        cropped = size + min(before, 0) + min(after, 0)
        if mode == "circular" and max(before, after) > cropped:
            raise ValueError(
                f"{layer}: circular padding {max(before, after)} must be at most the "
                f"(cropped) dimension ({cropped}) of input of shape {tuple(input.shape)}"
            )
    if mode == "circular" or not pad or min(pad) >= 0:
        return P.PadOp.apply(input, pad, mode, 0.0)
    grown = P.PadOp.apply(input, tuple(max(p, 0) for p in pad), mode, 0.0)
    return P.PadOp.apply(grown, tuple(min(p, 0) for p in pad), "constant", 0.0)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = 0.0) -> Tensor:
    """Pad the last dims: ``pad = (left, right, top, bottom, ...)`` from the last dim backwards.

    Modes: 'constant' (negative amounts crop), 'reflect', 'replicate', 'circular'.

    Example:
        >>> F.pad(convscope.randn(1, 3, 4, 4), (1, 1, 2, 2)).shape
        (1, 3, 8, 6)
    """
    return _pad_impl(input, pad, mode, 0.0 if value is None else value, "pad")


MODES_BY_NDIM = {3: ("nearest", "linear"), 4: ("nearest", "bilinear")}


def _spatial_tuple(value, nd: int, name: str, layer: Layer, kind) -> tuple:
    """An int/float, or a sequence of ``nd`` of them, as an nd-tuple (PyTorch: no 1-tuple for 2-D)."""
    if isinstance(value, (tuple, list)):
        out = tuple(value)
    elif isinstance(value, kind) and not isinstance(value, bool):
        out = (value,) * nd
    else:
        out = ()
    if len(out) != nd or any(isinstance(v, bool) or not isinstance(v, kind) for v in out):
        what = "an int" if kind is int else "a number"
        raise (ValueError if isinstance(value, (tuple, list)) else TypeError)(
            f"{layer}: {name} must be {what} or a sequence of {nd} (one per spatial dim of the "
            f"{nd + 2}-D input), got {value!r}"
        )
    return out


def interpolate_impl(
    input: Tensor,
    size: SizeArg | None,
    scale_factor: float | Sequence[float] | None,
    mode: str,
    align_corners: bool | None,
    layer: Layer,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    check_tensor(input, layer)
    check_float(input, layer)
    if input.ndim not in MODES_BY_NDIM:
        raise ValueError(
            f"{layer} expects a 3-D (N, C, W) or 4-D (N, C, H, W) input, got {input.ndim}-D input of "
            f"shape {tuple(input.shape)}"
        )
    modes = MODES_BY_NDIM[input.ndim]
    if mode not in modes:
        raise ValueError(
            f"{layer}: mode for a {input.ndim}-D input must be one of {modes}, got {mode!r}"
            + (
                " (bicubic, area, trilinear and nearest-exact are not implemented)"
                if mode not in ("nearest", "linear", "bilinear")
                else ""
            )
        )
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{layer}: align_corners applies to 'linear'/'bilinear' only, not to mode 'nearest'")
    if antialias:
        raise ValueError(
            f"{layer}: antialias=True is not implemented (PyTorch restricts it to bilinear/bicubic); "
            f"expected antialias=False"
        )
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{layer}: give exactly one of size or scale_factor")
    if size is not None and recompute_scale_factor:
        raise ValueError(
            f"{layer}: recompute_scale_factor is meaningless with an explicit size; give scale_factor"
        )
    nd = input.ndim - 2
    in_sp = tuple(input.shape[2:])
    if 0 in in_sp or input.shape[1] == 0:
        raise ValueError(
            f"{layer}: input of shape {tuple(input.shape)} has an empty channel or spatial dim; "
            f"expected only the batch dim to be 0"
        )
    if size is not None:
        out = _spatial_tuple(size, nd, "size", layer, int)
        if any(s < 1 for s in out):
            raise ValueError(f"{layer}: size must be positive, got {size!r}")
        scales = None
    else:
        scales = tuple(
            float(v) for v in _spatial_tuple(scale_factor, nd, "scale_factor", layer, (int, float))
        )
        if any(v <= 0 for v in scales):
            raise ValueError(f"{layer}: scale_factor must be positive, got {scale_factor!r}")
        out = tuple(int(math.floor(in_sp[i] * scales[i])) for i in range(nd))
        if any(o < 1 for o in out):
            raise ValueError(
                f"{layer}: scale_factor {scale_factor} gives an empty output {out} for input of shape "
                f"{tuple(input.shape)}; expected a larger scale_factor"
            )
        if recompute_scale_factor:  # the kernel then derives the scale from the sizes (in / out)
            scales = None
    if is_empty(input):  # N = 0
        return empty_result(tuple(input.shape[:2]) + out, [input])
    return P.InterpolateOp.apply(input, out, mode, bool(align_corners), scales)


def interpolate(
    input: Tensor,
    size: SizeArg | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize (N, C, W) or (N, C, H, W) maps, as torch.nn.functional.interpolate.

    Args:
        input (Tensor): (N, C, W) for modes 'nearest'/'linear', (N, C, H, W) for 'nearest'/'bilinear'.
        size (int or sequence of ints): output spatial size (one per spatial dim).
        scale_factor (float or sequence of floats): multiplier of each spatial size.
        mode (str, default 'nearest'): 'nearest', 'linear' (3-D) or 'bilinear' (4-D).
        align_corners (bool or None): linear modes only.
        recompute_scale_factor (bool or None): with a scale_factor, True computes the sampling
            scale from the sizes (``in / out``) instead of using ``1 / scale_factor``; the output
            size is ``floor(in * scale_factor)`` either way.
        antialias (bool, default False): True is not implemented.

    Shape:
        H_out = size, or floor(H * scale_factor) (W_out likewise).

    Raises:
        ValueError: size and scale_factor both or neither given, an empty output, a mode that
            does not fit the input's dims, an empty channel or spatial dim.

    Example:
        >>> F.interpolate(convscope.randn(1, 1, 4, 4), scale_factor=2, mode='bilinear').shape
        (1, 1, 8, 8)
    """
    return interpolate_impl(
        input, size, scale_factor, mode, align_corners, "interpolate", recompute_scale_factor, antialias
    )
