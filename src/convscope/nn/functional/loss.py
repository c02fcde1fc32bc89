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

import math

import numpy as np

from ...autograd.tensor import Tensor
from ...ops.loss import CoefficientLossOp
from ._checks import check_finite, check_tensor
from .activation import log_softmax

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


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` pair, when given, overrides ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _soft_target_loss(input, target, weight, reduction, label_smoothing, rest):
    """Cross-entropy with probability targets that require grad (distillation): built from
    tensor ops so the gradient reaches the target too."""
    c = input.shape[1] if input.ndim >= 2 else input.shape[0]
    logp = log_softmax(_rows(input)[0], dim=1)  # (M, C)
    probs = _rows(target.to(input.dtype))[0]
    if label_smoothing:
        probs = probs * (1 - label_smoothing) + label_smoothing / c
    if weight is not None:
        probs = probs * weight.data.astype(input.dtype, copy=False)
    per_row = -(probs * logp).sum(dim=1)  # (M,)
    if reduction == "none":
        return per_row.reshape(rest) if rest else per_row.reshape(())
    total = per_row.sum()
    return total / input.dtype.type(per_row.shape[0]) if reduction == "mean" else total


def _class_loss(input, target, weight, ignore_index, reduction, label_smoothing, from_logits, layer):
    _check_common(input, target, reduction, layer)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{layer}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    coeffs, denom = _coefficients(input, target, weight, ignore_index, label_smoothing, layer)
    rows, rest = _rows(input)
    if target.requires_grad and from_logits:
        return _soft_target_loss(input, target, weight, reduction, label_smoothing, rest)
    out = CoefficientLossOp.apply(rows, coeffs, reduction, denom, from_logits)
    if reduction == "none":
        return out.reshape(rest) if rest else out.reshape(())
    return out


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
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
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _class_loss(
        input, target, weight, ignore_index, reduction, float(label_smoothing), True, "cross_entropy"
    )


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities (e.g. log_softmax output) at the target classes.

    Shape:
        input (N, C) or (N, C, d1, ...); target (N,) or (N, d1, ...) int64.
    """
    check_tensor(target, "nll_loss", "target")
    if target.dtype.kind == "f":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype {target.dtype}")
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _class_loss(input, target, weight, ignore_index, reduction, 0.0, False, "nll_loss")


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error ``(input - target)**2`` reduced by 'mean', 'sum' or 'none'.

    Args:
        input, target (Tensor): any shapes that broadcast together (0-d included), as in PyTorch.
        size_average, reduce: PyTorch's deprecated pair; when given they override ``reduction``.
        reduction ('mean' | 'sum' | 'none', default 'mean'): 'mean' of an empty input is NaN.
        weight (Tensor, optional): per-element weights of the input's shape; 'mean' then divides
            by their sum.

    Shape:
        'none': the broadcast shape of input and target; otherwise ().

    Raises:
        ValueError: shapes that do not broadcast, NaN/inf in input or target, a bad reduction.
        TypeError: integer input and target both.
    """
    check_tensor(input, "mse_loss")
    check_tensor(target, "mse_loss", "target")
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction not in REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if input.dtype.kind != "f" and target.dtype.kind != "f":
        raise TypeError(
            f"mse_loss: expected a floating-point input or target, got dtypes {input.dtype} "
            f"and {target.dtype}"
        )
    if input.dtype.kind != "f":  # PyTorch promotes an integer side to the other's float dtype
        input = input.to(target.dtype)
    elif target.dtype.kind != "f":
        target = target.to(input.dtype)
    try:
        shape = np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
    except ValueError:
        raise ValueError(
            f"mse_loss: target shape {tuple(target.shape)} does not broadcast with input shape "
            f"{tuple(input.shape)}; expected equal (or broadcastable) shapes"
        ) from None
    check_finite(input, "mse_loss")
    check_finite(target, "mse_loss", "target")
    diff = input - target
    sq = diff * diff
    if weight is not None:
        check_tensor(weight, "mse_loss", "weight")
        if tuple(weight.shape) != tuple(input.shape):
            raise ValueError(
                f"mse_loss: weight must have the input's shape {tuple(input.shape)}, got "
                f"{tuple(weight.shape)}"
            )
        sq = sq * weight
        if reduction == "mean":
            return sq.sum() / weight.sum()
    if reduction == "none":
        return sq
    if reduction == "sum":
        return sq.sum()
    total = sq.sum()  # mean = sum / count, NaN for an empty input as in PyTorch
    return total / np.asarray(math.prod(shape), dtype=total.dtype)
