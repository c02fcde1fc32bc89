"""Class-score maps: a classifier converted to a fully convolutional net, slid over a larger image."""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn.modules.module import Module


def total_stride(fcn: Module, input_size: tuple) -> tuple[int, int]:
    """The step (s_h, s_w) in input pixels between neighbouring cells of ``fcn``'s score map.

    Found by growing the input until the map gains a second row/column (binary search,
    a few forward passes of zeros).
    """
    c, h, w = input_size

    def cells(dh: int, dw: int) -> tuple:
        with no_grad():
            out = fcn(Tensor._wrap(np.zeros((1, c, h + dh, w + dw), np.float32), False))
        return out.shape[2:]

    steps = []
    for axis, limit in ((0, h), (1, w)):
        lo, hi = 1, max(limit, 1)
        while lo < hi:
            mid = (lo + hi) // 2
            dh, dw = (mid, 0) if axis == 0 else (0, mid)
            if cells(dh, dw)[axis] >= 2:
                hi = mid
            else:
                lo = mid + 1
        steps.append(lo)
    return steps[0], steps[1]


def score_map(model: Module, x: np.ndarray, input_size: tuple) -> dict:
    """Class probabilities of every input_size window of ``x``, via :func:`to_fully_convolutional`.

    Args:
        model (Module): a classifier built for ``input_size``.
        x (ndarray): (1, C, H', W') normalised input, H' >= H and W' >= W.
        input_size (tuple): (C, H, W).

    Shape:
        probabilities: (classes, H_out, W_out), H_out = (H' - H) // s_h + 1.

    Returns:
        dict: probabilities, stride (s_h, s_w), window (H, W).

    Raises:
        ValueError: ``x`` smaller than ``input_size``, or a model that cannot be converted.
    """
    from ..models.fcn import to_fully_convolutional

    c, h, w = input_size
    if x.shape[1] != c or x.shape[2] < h or x.shape[3] < w:
        raise ValueError(
            f"score_map: the image must have {c} channels and be at least {h}x{w} (the model's input); "
            f"got shape {tuple(x.shape[1:])}"
        )
    fcn = to_fully_convolutional(model, input_size).eval()
    with no_grad():
        z = fcn(Tensor._wrap(np.ascontiguousarray(x, dtype=np.float32), False)).data[0]
    z = z - z.max(axis=0, keepdims=True)
    e = np.exp(z)
    return {
        "probabilities": e / e.sum(axis=0, keepdims=True),
        "stride": total_stride(fcn, input_size),
        "window": (h, w),
    }


def map_to_pixels(cells: np.ndarray, stride: tuple, window: tuple, shape: tuple) -> np.ndarray:
    """Paint each cell's value over the pixels nearest its window's centre.

    Shape:
        cells: (H_out, W_out) -> (H', W').
    """
    out_h, out_w = cells.shape
    rows = np.clip(np.round((np.arange(shape[0]) - window[0] / 2) / stride[0]).astype(int), 0, out_h - 1)
    cols = np.clip(np.round((np.arange(shape[1]) - window[1] / 2) / stride[1]).astype(int), 0, out_w - 1)
    return cells[rows][:, cols]
