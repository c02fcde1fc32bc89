"""cross_entropy, nll_loss and mse_loss (torch.nn.functional names, arguments and defaults).

Both classification losses reduce to ``loss_i = sum_c A[i, c] * logp[i, c]``
with a constant matrix A built here from the targets (see ops/loss.py):

* hard label y with class weights w and smoothing eps:
  ``A[i, c] = -(1 - eps) * w[y_i] * [c == y_i] - eps / C * w[c]``, rows of
  ignored targets are zero, and 'mean' divides by ``sum_i w[y_i]`` over the
  rows that are not ignored (PyTorch's weighted mean);
* soft targets (class probabilities p): ``A[i, c] = -w[c] * p'[i, c]`` with
  ``p' = (1 - eps) p + eps / C``, and 'mean' divides by the number of rows.
"""

from __future__ import annotations

import numpy as np

from ...autograd.tensor import Tensor
from ...ops.loss import CoefficientLossOp
from ._checks import check_finite, check_tensor

REDUCTIONS = ("mean", "sum", "none")


def _rows(input):
    """(N, C, d1, ...) -> (N*d1*..., C); (N, C) stays; (C,) -> (1, C)."""
    if input.ndim == 1:
        return input.reshape(1, -1), ()
    if input.ndim == 2:
        return input, (input.shape[0],)
    c = input.shape[1]
    rest = (input.shape[0],) + tuple(input.shape[2:])
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    return input.permute(*perm).reshape(-1, c), rest


def _coefficients(input, target, weight, ignore_index, label_smoothing, layer):
    """Build A (M, C) and the 'mean' denominator; validates targets."""
    c = input.shape[1] if input.ndim >= 2 else input.shape[0]
    dtype = input.dtype
    w = np.ones(c, dtype=dtype) if weight is None else weight.data.astype(dtype, copy=False)
    if weight is not None and tuple(weight.shape) != (c,):
        raise ValueError(f"{layer}: weight must have shape ({c},) (one per class), got {tuple(weight.shape)}")
    eps = dtype.type(label_smoothing)
    t = target.data
    if t.dtype.kind == "f":  # class probabilities
        if tuple(t.shape) != tuple(input.shape):
            raise ValueError(
                f"{layer}: probability targets must have the input's shape "
                f"{tuple(input.shape)}, got {tuple(t.shape)}"
            )
        probs = _rows(Tensor._wrap(t.astype(dtype, copy=False), False))[0].data
        if label_smoothing:
            probs = probs * (1 - eps) + eps / c
        return -probs * w, probs.shape[0]
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{layer}: target must hold integer class indices or float probabilities, got dtype {t.dtype}"
        )
    expected = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim >= 2 else ()
    if tuple(t.shape) != expected:
        raise ValueError(
            f"{layer}: target of shape {tuple(t.shape)} does not match input of shape "
            f"{tuple(input.shape)}; expected target shape {expected}"
        )
    labels = t.reshape(-1).astype(np.int64)
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= c))
    if bad.any():
        wrong = np.unique(labels[bad])[:5].tolist()
        raise ValueError(
            f"{layer}: target labels must be in [0, {c - 1}] for {c} classes, got "
            f"{wrong} (input has shape {tuple(input.shape)})"
        )
    safe = np.where(valid, labels, 0)
    rows = np.arange(labels.size)
    a = np.zeros((labels.size, c), dtype=dtype)
    wy = w[safe] * valid  # (M,)
    a[rows, safe] = -(1 - eps) * wy
    if label_smoothing:
        a -= (eps / dtype.type(c)) * (valid[:, None] * w[None, :])
    return a, float(wy.sum(dtype=np.float64))


def _check_common(input, target, reduction, layer):
    check_tensor(input, layer)
    check_tensor(target, layer, "target")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{layer}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if input.ndim < 1 or input.dtype.kind != "f":
        raise ValueError(
            f"{layer}: input must be floating-point scores of shape (N, C) or "
            f"(N, C, d1, ...), got dtype {input.dtype}, shape {tuple(input.shape)}"
        )
    check_finite(input, layer)


def _class_loss(input, target, weight, ignore_index, reduction, label_smoothing, from_logits, layer):
    _check_common(input, target, reduction, layer)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{layer}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    coeffs, denom = _coefficients(input, target, weight, ignore_index, label_smoothing, layer)
    rows, rest = _rows(input)
    out = CoefficientLossOp.apply(rows, coeffs, reduction, denom, from_logits)
    if reduction == "none":
        return out.reshape(rest) if rest else out.reshape(())
    return out


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
):
    """Cross-entropy between logits and class indices (or class probabilities).

    Args:
        input (Tensor): logits (N, C) or (N, C, d1, ...) for per-pixel classes.
        target (Tensor): int64 labels (N,) / (N, d1, ...), or float probabilities shaped like input.
        weight (Tensor, optional): (C,) per-class weights.
        ignore_index (int, default -100): label whose rows contribute nothing.
        reduction ('mean' | 'sum' | 'none', default 'mean').
        label_smoothing (float, default 0.0): mix eps/C uniform mass into each target.

    Raises:
        ValueError: NaN/inf in the input, labels outside [0, C-1], shape mismatch.

    Example:
        >>> F.cross_entropy(convscope.randn(8, 10), convscope.tensor([1] * 8)).shape
        ()
    """
    return _class_loss(
        input, target, weight, ignore_index, reduction, float(label_smoothing), True, "cross_entropy"
    )


def nll_loss(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
):
    """Negative log-likelihood of log-probabilities (e.g. log_softmax output) at the target classes.

    Shape:
        input (N, C) or (N, C, d1, ...); target (N,) or (N, d1, ...) int64.
    """
    check_tensor(target, "nll_loss", "target")
    if target.dtype.kind == "f":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype {target.dtype}")
    return _class_loss(input, target, weight, ignore_index, reduction, 0.0, False, "nll_loss")


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Mean squared error ``(input - target)**2`` reduced by 'mean', 'sum' or 'none'."""
    _check_common(input, target, reduction, "mse_loss")
    check_finite(target, "mse_loss", "target")
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(
            f"mse_loss: target shape {tuple(target.shape)} differs from input shape "
            f"{tuple(input.shape)}; expected equal shapes"
        )
    diff = input - target
    sq = diff * diff
    if reduction == "none":
        return sq
    return sq.mean() if reduction == "mean" else sq.sum()
