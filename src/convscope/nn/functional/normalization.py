"""batch_norm (torch.nn.functional name, arguments and defaults)."""

from __future__ import annotations

from ...autograd.tensor import Tensor
from ...ops import activation as A
from ...ops import norm as B
from ._checks import Layer, check_tensor
from ._empty import empty_result, is_empty


def batch_norm_impl(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float | None,
    eps: float,
    layer: Layer,
    relu: bool = False,
) -> Tensor:
    """Batch norm's checks and dispatch (see :func:`batch_norm`); ``relu``: a ReLU follows, fused
    into the training-mode op (evaluation applies it separately)."""
    check_tensor(input, layer)
    if tuple(input.shape) == (0,):  # PyTorch returns an empty 1-D input as it is
        return empty_result((0,), [input])
    if input.ndim < 2:
        raise ValueError(
            f"{layer} expects input of shape (N, C) or (N, C, ...) (or an empty 1-D input), got "
            f"shape {tuple(input.shape)}"
        )
    c = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(
                f"{layer} expects {t.shape[0] if t.ndim else 0} channels ({name} has shape "
                f"{tuple(t.shape)}), got {c} channels in input of shape {tuple(input.shape)}"
            )
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{layer}: evaluation needs running_mean and running_var")
    count = input.data.size // c if c else 0
    if training and count == 1:
        raise ValueError(
            f"{layer}: training needs more than 1 value per channel to compute batch "
            f"statistics, got input of shape {tuple(input.shape)} (use batch size > 1 or "
            f"call .eval())"
        )
    if is_empty(input):  # N = 0, C = 0 or an empty spatial dim: the statistics stay as they are
        out = empty_result(input.shape, [input] + ([] if weight is None else [weight]), bias)
        return A.ReLUOp.apply(out) if relu else out
    if not training and running_mean is not None and running_var is not None:  # both checked above
        out = B.BatchNormEvalOp.apply(input, running_mean.data, running_var.data, weight, bias, float(eps))
        return A.ReLUOp.apply(out) if relu else out
    out, mean, var = B.BatchNormTrainOp.apply(input, weight, bias, float(eps), relu)
    if running_mean is not None:
        m = running_mean.dtype.type(momentum)
        running_mean.data *= 1 - m
        running_mean.data += m * mean.data.astype(running_mean.dtype)
    if running_var is not None:
        m = running_var.dtype.type(momentum)
        unbiased = var.data * var.dtype.type(count / (count - 1))
        running_var.data *= 1 - m
        running_var.data += m * unbiased.astype(running_var.dtype)
    return out


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel, as torch.nn.functional.batch_norm.

    Training: use the batch's mean and biased variance over (N, H, W), and
    update running_mean/running_var in place with ``momentum`` (the running
    variance takes the unbiased estimate). Evaluation: use the running
    statistics.

    Shape:
        input (N, C) or (N, C, H, W) -> same shape; statistics (C,).
    """
    return batch_norm_impl(
        input, running_mean, running_var, weight, bias, training, momentum, eps, "batch_norm"
    )


__all__ = ["batch_norm"]
