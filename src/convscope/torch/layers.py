"""The layer tables of the bridge: each convscope layer and its torch.nn twin, built from arguments.

Both directions read a layer's constructor arguments from its attributes (the names are
PyTorch's on both sides) and build the other side's layer; weights and buffers are copied
afterwards by :func:`copy_tensors_to_torch` / :func:`copy_tensors_from_torch`.

``inplace`` is always translated as False: convscope never mutates a tensor, so a convscope
forward may reuse the input of a ReLU after it, which an in-place torch ReLU would overwrite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import nn as cnn
from ..autograd.tensor import Tensor
from ..nn.parameter import Parameter

tnn = torch.nn


def _conv(cls: type) -> Callable:
    def build(m):
        return cls(
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            dilation=m.dilation,
            groups=m.groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
        )

    return build


def _conv_transpose(cls: type) -> Callable:
    def build(m):
        return cls(
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            output_padding=m.output_padding,
            groups=m.groups,
            bias=m.bias is not None,
            dilation=m.dilation,
            padding_mode=m.padding_mode,
        )

    return build


def _batchnorm(cls: type) -> Callable:
    def build(m):
        return cls(
            m.num_features,
            eps=m.eps,
            momentum=m.momentum,
            affine=m.affine,
            track_running_stats=m.track_running_stats,
        )

    return build


def _layer_builders(target) -> dict:
    """Builders keyed by source-layer class name; ``target`` is ``torch.nn`` or ``convscope.nn``."""
    return {
        "Conv1d": _conv(target.Conv1d),
        "Conv2d": _conv(target.Conv2d),
        "ConvTranspose2d": _conv_transpose(target.ConvTranspose2d),
        "BatchNorm1d": _batchnorm(target.BatchNorm1d),
        "BatchNorm2d": _batchnorm(target.BatchNorm2d),
        "MaxPool2d": lambda m: target.MaxPool2d(
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            dilation=m.dilation,
            return_indices=m.return_indices,
            ceil_mode=m.ceil_mode,
        ),
        "AvgPool2d": lambda m: target.AvgPool2d(
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            ceil_mode=m.ceil_mode,
            count_include_pad=m.count_include_pad,
            divisor_override=m.divisor_override,
        ),
        "AdaptiveAvgPool2d": lambda m: target.AdaptiveAvgPool2d(m.output_size),
        "AdaptiveMaxPool2d": lambda m: target.AdaptiveMaxPool2d(m.output_size, m.return_indices),
        "AdaptiveAvgPool1d": lambda m: target.AdaptiveAvgPool1d(m.output_size),
        "Dropout": lambda m: target.Dropout(m.p),
        "ReLU": lambda m: target.ReLU(),
        "LeakyReLU": lambda m: target.LeakyReLU(m.negative_slope),
        "Sigmoid": lambda m: target.Sigmoid(),
        "Tanh": lambda m: target.Tanh(),
        "Softmax": lambda m: target.Softmax(m.dim),
        "LogSoftmax": lambda m: target.LogSoftmax(m.dim),
        "Linear": lambda m: target.Linear(m.in_features, m.out_features, bias=m.bias is not None),
        "Flatten": lambda m: target.Flatten(m.start_dim, m.end_dim),
        "Identity": lambda m: target.Identity(),
        "Upsample": lambda m: target.Upsample(
            size=m.size,
            scale_factor=m.scale_factor,
            mode=m.mode,
            align_corners=m.align_corners,
            recompute_scale_factor=m.recompute_scale_factor,
        ),
        "CrossEntropyLoss": lambda m: target.CrossEntropyLoss(
            ignore_index=m.ignore_index, reduction=m.reduction, label_smoothing=m.label_smoothing
        ),
        "NLLLoss": lambda m: target.NLLLoss(ignore_index=m.ignore_index, reduction=m.reduction),
        "MSELoss": lambda m: target.MSELoss(reduction=m.reduction),
    }


TO_TORCH = {getattr(cnn, name): build for name, build in _layer_builders(tnn).items()}
FROM_TORCH = {getattr(tnn, name): build for name, build in _layer_builders(cnn).items()}


def leaf_class(module, table: dict) -> type | None:
    """The table class ``module`` is (or subclasses), or None."""
    for cls in type(module).__mro__:
        if cls in table:
            return cls
    return None


def to_torch_tensor(value: Tensor) -> torch.Tensor:
    """A torch tensor holding a copy of a convscope tensor's data (dtype kept)."""
    return torch.from_numpy(np.array(value.data, copy=True, order="C"))


def to_convscope_array(value: torch.Tensor) -> np.ndarray:
    """A NumPy copy of a torch tensor's data (dtype kept)."""
    return value.detach().cpu().numpy().copy()


def copy_tensors_to_torch(src, dst) -> None:
    """Set ``dst``'s own parameters and buffers (torch) to copies of ``src``'s (convscope)."""
    for name, p in src._parameters.items():
        if p is None:
            dst.register_parameter(name, None)
        else:
            dst.register_parameter(
                name, tnn.Parameter(to_torch_tensor(p), requires_grad=bool(p.requires_grad))
            )
    for name, b in src._buffers.items():
        if name in dst._parameters:
            del dst._parameters[name]
        dst.register_buffer(
            name, None if b is None else to_torch_tensor(b), persistent=name not in src._non_persistent
        )


def copy_tensors_from_torch(src, dst) -> None:
    """Set ``dst``'s own parameters and buffers (convscope) to copies of ``src``'s (torch)."""
    for name, p in src._parameters.items():
        if p is None:
            dst.register_parameter(name, None)
        else:
            param = Parameter(to_convscope_array(p))
            param.requires_grad = bool(p.requires_grad)
            dst.register_parameter(name, param)
    for name, b in src._buffers.items():
        dst._parameters.pop(name, None)
        dst.register_buffer(
            name,
            None if b is None else Tensor(to_convscope_array(b)),
            persistent=name not in src._non_persistent_buffers_set,
        )
