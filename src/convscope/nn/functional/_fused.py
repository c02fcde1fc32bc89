"""Fused inference passes for models: eval batch norm + ReLU, residual add + ReLU.

A model calls ``batch_norm_relu(self.bn, self.relu, x)`` where it would write
``self.relu(self.bn(x))`` (and ``add_relu(self.relu, a, b)`` for ``self.relu(a + b)``). The
fused kernel (one memory pass instead of two, :func:`convscope.kernels.batchnorm.channel_affine_relu`
and :func:`convscope.kernels.elementwise.add_relu`) runs only in plain inference: no tape
being recorded (``no_grad``), batch norm in eval mode with running statistics, float32 4-D
input matching the layer, and no hooks on either module (so summaries, traces, ONNX export
and gradients see the unfused modules). Otherwise the modules run as written. The fused
results equal the unfused ones bit for bit on each backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...autograd.grad_mode import is_grad_enabled
from ...autograd.tensor import Tensor
from ...kernels.dispatch import call
from ...ops.norm import eval_affine

if TYPE_CHECKING:
    from ..modules.module import Module

__all__ = ["batch_norm_relu", "add_relu"]


def _unhooked(*modules: Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)


def _plain_relu(relu: Module) -> bool:
    from ..modules.activation import ReLU

    return type(relu) is ReLU


def batch_norm_relu(bn: Module, relu: Module, x: Tensor) -> Tensor:
    """``relu(bn(x))``, in one pass when it is plain inference (see the module docstring).

    Args:
        bn (nn.BatchNorm2d); relu (nn.ReLU); x (Tensor).

    Shape:
        x (N, C, H, W) -> (N, C, H, W).
    """
    from ..modules.normalization import BatchNorm2d

    fusable = (
        not is_grad_enabled()
        and type(bn) is BatchNorm2d
        and not bn.training
        and bn.running_mean is not None
        and bn.running_var is not None
        and _plain_relu(relu)
        and _unhooked(bn, relu)
        and isinstance(x, Tensor)
        and x.data.dtype == np.float32
        and x.data.ndim == 4
        and x.data.shape[1] == bn.num_features
        and x.data.size > 0
        and all(
            t is None or (t.data.dtype == np.float32 and t.data.shape == (bn.num_features,))
            for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias)
        )
    )
    if not fusable:
        return relu(bn(x))
    weight = None if bn.weight is None else bn.weight.data
    bias = None if bn.bias is None else bn.bias.data
    scale, shift, _ = eval_affine(
        x.data.dtype, bn.running_mean.data, bn.running_var.data, weight, bias, float(bn.eps)
    )
    return Tensor._wrap(call("batchnorm", "channel_affine_relu", x.data, scale, shift)[0], False)


def add_relu(relu: Module, a: Tensor, b: Tensor) -> Tensor:
    """``relu(a + b)``, in one pass when it is plain inference (see the module docstring).

    Args:
        relu (nn.ReLU); a, b (Tensor): same shape, float32.

    Shape:
        a, b (N, *) -> (N, *).
    """
    fusable = (
        not is_grad_enabled()
        and _plain_relu(relu)
        and _unhooked(relu)
        and isinstance(a, Tensor)
        and isinstance(b, Tensor)
        and a.data.dtype == np.float32
        and b.data.dtype == np.float32
        and a.data.shape == b.data.shape
        and a.data.ndim >= 1
    )
    if not fusable:
        return relu(a + b)
    return Tensor._wrap(call("elementwise", "add_relu", a.data, b.data)[0], False)
