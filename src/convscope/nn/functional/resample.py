"""pad and interpolate (torch.nn.functional names and defaults)."""

from __future__ import annotations

import math

from ...ops import pool as P
from ._checks import check_float, check_tensor

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
        dims = len(pad) // 2
        if input.ndim - dims not in (1, 2):
            raise ValueError(
                f"{layer}: mode {mode!r} pads the last 1-3 dims of a batched (N, C, ...) "
                f"or unbatched (C, ...) input; got pad {tuple(pad)} for input of shape "
                f"{tuple(input.shape)}"
            )
        for d in range(dims):
            size = input.shape[-1 - d]
            before, after = pad[2 * d], pad[2 * d + 1]
            if min(before, after) < 0:
                raise ValueError(f"{layer}: mode {mode!r} needs non-negative padding, got {tuple(pad)}")
            if mode == "reflect" and max(before, after) >= size:
                raise ValueError(
                    f"{layer}: reflect padding {max(before, after)} must be smaller than "
                    f"the padded dimension ({size}) of input of shape {tuple(input.shape)}"
                )
            if mode == "circular" and max(before, after) > size:
                raise ValueError(
                    f"{layer}: circular padding {max(before, after)} must be at most the "
                    f"padded dimension ({size}) of input of shape {tuple(input.shape)}"
                )
    else:
        for d in range(len(pad) // 2):
            if input.shape[-1 - d] + pad[2 * d] + pad[2 * d + 1] < 0:
                raise ValueError(
                    f"{layer}: pad {tuple(pad)} crops more than the input of shape {tuple(input.shape)} has"
                )
    return P.PadOp.apply(input, tuple(pad), mode, float(value))


def pad(input, pad, mode: str = "constant", value: float = 0.0):
    """Pad the last dims: ``pad = (left, right, top, bottom, ...)`` from the last dim backwards.

    Modes: 'constant' (negative amounts crop), 'reflect', 'replicate', 'circular'.

    Example:
        >>> F.pad(convscope.randn(1, 3, 4, 4), (1, 1, 2, 2)).shape
        (1, 3, 8, 6)
    """
    return _pad_impl(input, pad, mode, 0.0 if value is None else value, "pad")


def interpolate_impl(input, size, scale_factor, mode, align_corners, layer):
    check_tensor(input, layer)
    check_float(input, layer)
    if input.ndim != 4:
        raise ValueError(
            f"{layer} expects a 4-D input (N, C, H, W), got {input.ndim}-D input of "
            f"shape {tuple(input.shape)}"
        )
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{layer}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{layer}: align_corners applies to 'bilinear' only, not to mode 'nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{layer}: give exactly one of size or scale_factor")
    in_hw = input.shape[2:]
    if size is not None:
        out = (size, size) if isinstance(size, int) else tuple(size)
        if len(out) != 2 or any(not isinstance(s, int) or s < 1 for s in out):
            raise ValueError(f"{layer}: size must be a positive int or (H, W), got {size!r}")
        scales = None
    else:
        scales = (
            (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        )
        if len(scales) != 2 or any(s <= 0 for s in scales):
            raise ValueError(f"{layer}: scale_factor must be positive, got {scale_factor!r}")
        scales = tuple(float(s) for s in scales)
        out = tuple(int(math.floor(in_hw[i] * scales[i])) for i in range(2))
        if any(o < 1 for o in out):
            raise ValueError(
                f"{layer}: scale_factor {scale_factor} gives an empty output for input {tuple(input.shape)}"
            )
    return P.InterpolateOp.apply(input, out, mode, bool(align_corners), scales)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """Resize (N, C, H, W) maps by 'nearest' or 'bilinear' sampling, as torch.nn.functional.interpolate.

    Shape:
        (H_out, W_out) = size, or floor(H * scale_factor), floor(W * scale_factor).

    Example:
        >>> F.interpolate(convscope.randn(1, 1, 4, 4), scale_factor=2, mode='bilinear').shape
        (1, 1, 8, 8)
    """
    return interpolate_impl(input, size, scale_factor, mode, align_corners, "interpolate")
