"""Classification losses as one tape node over a per-element coefficient matrix.

Cross-entropy, NLL, label smoothing, class weights, ignore_index and soft
targets are all of the form ``loss_i = sum_c A[i, c] * logp[i, c]`` for a
constant matrix ``A`` built from the targets (see
``convscope.nn.functional.loss``). One node therefore covers them all: its
gradient with respect to ``logp`` is ``A`` (times the reduction's scale) and,
from logits, ``A - softmax * A.sum(1)``.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function


class CoefficientLossOp(Function):
    """Shape: scores (M, C), coeffs (M, C) -> (M,) for reduction 'none', else ()."""

    @staticmethod
    def forward(ctx, scores, coeffs, reduction, denom, from_logits):
        if from_logits:
            shifted = scores - scores.max(axis=1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            ctx.logp = logp
        else:
            logp = scores
        per_row = (coeffs * logp).sum(axis=1)  # (M,)
        ctx.coeffs, ctx.reduction, ctx.denom, ctx.from_logits = coeffs, reduction, denom, from_logits
        if reduction == "none":
            return per_row
        total = per_row.sum(dtype=scores.dtype)
        if reduction == "mean":
            return np.asarray(total / scores.dtype.type(denom))
        return np.asarray(total)

    @staticmethod
    def backward(ctx, g):
        coeffs = ctx.coeffs
        if ctx.reduction == "none":
            grad_logp = coeffs * g[:, None]
        elif ctx.reduction == "mean":
            # every row ignored (denom 0): the NaN loss has zero gradient, as in PyTorch
            grad_logp = coeffs * (g / g.dtype.type(ctx.denom)) if ctx.denom else np.zeros_like(coeffs)
        else:
            grad_logp = coeffs * g
        if not ctx.from_logits:
            return grad_logp, None, None, None, None
        p = np.exp(ctx.logp)
        return grad_logp - p * grad_logp.sum(axis=1, keepdims=True), None, None, None, None
