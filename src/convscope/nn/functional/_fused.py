"""Fused passes for models: conv + eval batch norm + ReLU, batch norm + ReLU, residual add +
ReLU.

A model calls ``batch_norm_relu(self.bn, self.relu, x)`` where it would write
``self.relu(self.bn(x))`` (``add_relu(self.relu, a, b)`` for ``self.relu(a + b)``,
``conv_bn_relu(self.conv, self.bn, self.relu, x)`` for ``self.relu(self.bn(self.conv(x)))``,
with ``bn`` or ``relu`` None when absent); ``nn.Sequential`` fuses its runs of Conv2d,
BatchNorm2d and ReLU the same way (:func:`sequential`).

- Plain inference (no tape being recorded (``no_grad``), batch norm in eval mode with running
  statistics, float32 4-D input matching the layers): one memory pass instead of two or three
  (:func:`convscope.ops.conv.conv2d_inference`, :func:`convscope.kernels.batchnorm.channel_affine_relu`,
  :func:`convscope.kernels.elementwise.add_relu`), and nothing recorded.
- Training (the modules in train mode): batch norm + ReLU run as one tape node
  (:class:`convscope.ops.norm.BatchNormTrainOp` with ``relu``), whose forward applies the ReLU
  in the normalising pass and whose backward masks the gradient inside batch norm's own two
  passes; the residual add + ReLU is one node (:class:`convscope.ops.math.AddReLUOp`) whose
  forward is one pass and whose backward hands the same masked gradient to both inputs.

Nothing fuses when a module has hooks (so summaries and traces see the unfused modules), and
evaluation with a tape (Grad-CAM, ONNX export) runs the modules as written. The fused results
and gradients equal the unfused ones bit for bit on each backend.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from ...autograd.grad_mode import is_grad_enabled
from ...autograd.tensor import Tensor
from ...kernels.dispatch import call
from ...ops import conv as conv_ops
from ...ops.math import AddReLUOp
from ...ops.norm import eval_affine

if TYPE_CHECKING:
    from ..modules.module import Module

__all__ = ["batch_norm_relu", "add_relu", "conv_bn_relu", "sequential"]


def _unhooked(*modules: Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)


def _plain_relu(relu: Module) -> bool:
    from ..modules.activation import ReLU

    return type(relu) is ReLU


def _eval_bn(bn: Module, channels: int) -> tuple | None:
    """(running_mean, running_var, weight, bias) of an unhooked BatchNorm2d in eval mode with
    float32 running statistics for ``channels``; None for anything else."""
    from ..modules.normalization import BatchNorm2d

    if type(bn) is not BatchNorm2d or bn.training or bn.num_features != channels or not _unhooked(bn):
        return None
    stats = (bn.running_mean, bn.running_var, bn.weight, bn.bias)
    if stats[0] is None or stats[1] is None:
        return None
    shape = (channels,)
    if all(t is None or (t.data.dtype == np.float32 and t.data.shape == shape) for t in stats):
        return stats
    return None


def _training_bn(bn: Module) -> bool:
    """An unhooked BatchNorm2d (not a subclass: SyncBatchNorm has its own op) in train mode."""
    from ..modules.normalization import BatchNorm2d

    return type(bn) is BatchNorm2d and bn.training and _unhooked(bn)


def _bn_affine(bn: Module, stats: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of an eval batch norm, as its own forward computes them."""
    mean, var, weight, bias = stats
    scale, shift, _ = eval_affine(
        np.dtype(np.float32),
        mean.data,
        var.data,
        None if weight is None else weight.data,
        None if bias is None else bias.data,
        float(bn.eps),
    )
    return scale, shift


def _float32_maps(x: object) -> bool:
    return isinstance(x, Tensor) and x.data.dtype == np.float32 and x.data.ndim == 4 and x.data.size > 0


def batch_norm_relu(bn: Module, relu: Module, x: Tensor) -> Tensor:
    """``relu(bn(x))``, in one pass when it is plain inference (see the module docstring).

    Args:
        bn (nn.BatchNorm2d); relu (nn.ReLU); x (Tensor).

    Shape:
        x (N, C, H, W) -> (N, C, H, W).
    """
    plain_relu = _plain_relu(relu) and _unhooked(relu)
    stats = _eval_bn(bn, x.data.shape[1]) if not is_grad_enabled() and _float32_maps(x) else None
    if stats is None or not plain_relu:
        if plain_relu and _training_bn(bn) and relu.training:
            return bn.forward_relu(x)
        return relu(bn(x))
    scale, shift = _bn_affine(bn, stats)
    return Tensor._wrap(call("batchnorm", "channel_affine_relu", x.data, scale, shift)[0], False)


def conv_bn_relu(conv: Module, bn: Module | None, relu: Module | None, x: Tensor) -> Tensor:
    """``relu(bn(conv(x)))`` (``bn``, ``relu``: None when absent), in the conv's own pass when it
    is plain inference (see the module docstring); otherwise the modules run in turn.

    Args:
        conv (nn.Conv2d); bn (nn.BatchNorm2d or None); relu (nn.ReLU or None); x (Tensor).

    Shape:
        x (N, C_in, H, W) -> (N, C_out, H_out, W_out).
    """
    from ..modules.conv import Conv2d

    stats = None
    fusable = (
        not is_grad_enabled()
        and type(conv) is Conv2d
        and _unhooked(conv)
        and _float32_maps(x)
        and conv.weight.data.dtype == np.float32
        and (bn is None or (stats := _eval_bn(bn, conv.out_channels)) is not None)
        and (relu is None or (_plain_relu(relu) and _unhooked(relu)))
    )
    if not fusable:
        y = conv(x)
        if bn is not None and relu is not None:
            return batch_norm_relu(bn, relu, y)
        y = y if bn is None else bn(y)
        return y if relu is None else relu(y)
    scale, shift = (None, None) if bn is None or stats is None else _bn_affine(bn, stats)
    bias = None if conv.bias is None else conv.bias.data
    key = _plan_key(conv, x)
    entry = _PLANS.get(conv)
    if entry is not None and entry[0] == key:  # checked before for these settings and shapes
        stride, pads, dilation, groups = entry[1]
        y = conv_ops.conv2d_inference(
            x.data, conv.weight.data, bias, stride, pads, dilation, groups, scale, shift, relu is not None
        )
        return Tensor._wrap(y, False)
    from .conv import check_conv_args, conv_nd, resolve_padding

    layer = conv._layer_name()
    out = conv_nd(
        x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode,
        layer, 2, epilogue=(scale, shift, relu is not None),
    )  # fmt: skip
    if conv.padding_mode == "zeros":  # the checks passed: remember the kernel's arguments
        args = check_conv_args(2, layer, conv.stride, conv.padding, conv.dilation, conv.groups)
        kernel = tuple(conv.weight.shape[2:])
        pads = resolve_padding(args.padding, tuple(x.shape[2:]), kernel, args.stride, args.dilation, layer)
        _PLANS[conv] = (key, (args.stride, pads, args.dilation, args.groups))
    return out


#: conv module -> (key, (stride, pads, dilation, groups)): conv_nd's checks and padding, done
#: once per module settings and shapes (they cost more than a small layer's kernel).
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan_key(conv: Module, x: Tensor) -> tuple:
    bias = conv.bias
    return (
        x.data.shape,
        conv.weight.data.shape,
        None if bias is None else (bias.data.shape, bias.data.dtype),
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.padding_mode,
    )


def sequential(modules: list[Module], x: Any) -> Any:
    """Run ``modules`` in order as ``nn.Sequential`` does, each run of Conv2d followed by
    BatchNorm2d and/or ReLU through :func:`conv_bn_relu` (which falls back to the plain calls).
    """
    from ..modules.conv import Conv2d
    from ..modules.normalization import BatchNorm2d

    i, n = 0, len(modules)
    while i < n:
        module = modules[i]
        if type(module) is Conv2d and i + 1 < n:
            bn = modules[i + 1] if type(modules[i + 1]) is BatchNorm2d else None
            j = i + 1 + (bn is not None)
            relu = modules[j] if j < n and _plain_relu(modules[j]) else None
            if bn is not None or relu is not None:
                x = conv_bn_relu(module, bn, relu, x)
                i = j + (relu is not None)
                continue
        x = module(x)
        i += 1
    return x


def add_relu(relu: Module, a: Tensor, b: Tensor) -> Tensor:
    """``relu(a + b)``, in one pass when it is plain inference or training (see the module
    docstring).

    Args:
        relu (nn.ReLU); a, b (Tensor): same shape, float32.

    Shape:
        a, b (N, *) -> (N, *).
    """
    fusable = (
        _plain_relu(relu)
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
    if not is_grad_enabled():
        return Tensor._wrap(call("elementwise", "add_relu", a.data, b.data)[0], False)
    if relu.training:
        return AddReLUOp.apply(a, b)
    return relu(a + b)
