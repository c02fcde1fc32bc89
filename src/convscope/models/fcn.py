"""Fully connected to convolution: the classifier head as convolutions, so the network slides.

A Linear that reads the flattened (C, H, W) feature map computes the same numbers as a Conv2d
whose kernel covers that whole map (weight (C_out, C*H*W) reshaped to (C_out, C, H, W)); the
Linears after it are 1x1 convolutions. On a larger image the converted network then returns a
class-score map: the value at (i, j) is the original head applied to the (i, j)-th H x W
window of the feature map computed on the whole image (CS231n, "converting FC layers to
CONV layers"). For a network without padding that equals the original network on the input
crop at (i*s, j*s), s being its total stride; with padding, border windows differ (the crop's
own zero padding is not where the whole image has pixels).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn.modules.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ..nn.modules.conv import Conv2d
from ..nn.modules.dropout import Dropout
from ..nn.modules.linear import Flatten, Identity, Linear
from ..nn.modules.module import Module
from ..nn.modules.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d

ELEMENTWISE = (ReLU, LeakyReLU, Sigmoid, Tanh, Dropout, Identity)


def _record_leaf_calls(model: Module, x: Tensor) -> tuple[list, Tensor]:
    """Run ``model`` on ``x`` (eval, no tape) recording (name, module, input, output) per leaf call."""
    calls: list = []
    handles = []
    for name, m in model.named_modules():
        if not any(True for _ in m.children()):
            handles.append(
                m.register_forward_hook(
                    lambda mod, inputs, out, name=name: calls.append((name, mod, inputs[0], out))
                )
            )
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            out = model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return calls, out


def _set_module(root: Module, name: str, new: Module) -> None:
    parent = root
    *path, last = name.split(".")
    for part in path:
        parent = parent._modules[part]
    parent._modules[last] = new


def to_fully_convolutional(model: Module, input_size: Sequence[int]) -> Module:
    """A copy of ``model`` whose classifier Linears are convolutions (FC -> conv).

    Args:
        model (Module): a zoo model or an ``nn.Sequential`` of conv/pool layers, an
            ``nn.Flatten`` and Linears (with activations/dropout between them).
        input_size (tuple): (C, H, W) the model was built for.

    Shape:
        at input_size: (N, C, H, W) -> (N, classes, 1, 1), equal to the model's logits;
        larger input: (N, C, H', W') -> (N, classes, H_out, W_out) with
        H_out = (H' - H) // s + 1 for a network of total stride s.

    Returns:
        Module: a new model (the original is unchanged) in the original's train/eval mode. The
        first Linear becomes a Conv2d with the kernel size of the feature map it sees at
        ``input_size``, later ones 1x1 convolutions. An adaptive pool before the flatten that is
        the identity at ``input_size`` is removed; a global one (output 1x1) becomes a fixed
        average/max pool over the map it sees there (window size, stride 1), so it slides too.

    Raises:
        ValueError: no Linear; the first Linear's input is not an ``nn.Flatten`` of a
            (N, C, H, W) map; a layer after the flatten that is not a Linear or elementwise;
            an adaptive pool that is neither the identity nor global at ``input_size``.

    Example:
        >>> fcn = to_fully_convolutional(models.create("resnet18", num_classes=10), (3, 64, 64))
        >>> fcn(convscope.randn(1, 3, 96, 96)).shape
        (1, 10, 2, 2)
    """
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"to_fully_convolutional: input_size must be (C, H, W), got {input_size!r}")
    x = Tensor._wrap(np.zeros((1, *size), dtype=np.float32), False)
    calls, out = _record_leaf_calls(model, x)
    first = next((i for i, c in enumerate(calls) if isinstance(c[1], Linear)), None)
    if first is None:
        raise ValueError(f"to_fully_convolutional: {type(model).__name__} has no Linear layer to convert")
    # the chain from the flatten to the model's output: flatten, then Linears and elementwise layers
    start = first
    while (
        start > 0 and isinstance(calls[start - 1][1], ELEMENTWISE) and calls[start][2] is calls[start - 1][3]
    ):
        start -= 1
    flat_name, flat, flat_in, flat_out = calls[start - 1] if start > 0 else ("", None, None, None)
    if (
        not isinstance(flat, Flatten)
        or calls[start][2] is not flat_out
        or flat_in is None
        or flat_in.ndim != 4
    ):
        raise ValueError(
            f"to_fully_convolutional: the input of Linear {calls[first][0]!r} is not an nn.Flatten of a "
            f"(N, C, H, W) feature map (the flatten must be a module, not a reshape in forward)"
        )
    if (flat.start_dim, flat.end_dim) != (1, -1):
        raise ValueError(
            f"to_fully_convolutional: {flat_name!r} flattens dims {flat.start_dim}..{flat.end_dim}"
        )
    head = calls[start:]
    for (name, m, inp, _o), prev in zip(head, [None, *head[:-1]], strict=True):
        ok = isinstance(m, (Linear, *ELEMENTWISE)) or (isinstance(m, (Softmax, LogSoftmax)) and m.dim == 1)
        if not ok or (prev is not None and inp is not prev[3]):
            raise ValueError(
                f"to_fully_convolutional: {name!r} ({type(m).__name__}) follows the flatten but is not a "
                f"Linear or an elementwise layer fed by the previous one; only such heads convert"
            )
    if head[-1][3] is not out:
        raise ValueError("to_fully_convolutional: the model does not return the last Linear's output")
    new = copy.deepcopy(model)
    for attr in ("model_name", "model_config"):  # the registry would rebuild the original layers
        new.__dict__.pop(attr, None)
    _, c, h, w = flat_in.shape
    src = calls[start - 2] if start >= 2 else None
    if src is not None and src[3] is flat_in and isinstance(src[1], (AdaptiveAvgPool2d, AdaptiveMaxPool2d)):
        pname, pool, pin, _ = src
        hin, win = pin.shape[2:]
        if (hin, win) == (h, w):
            _set_module(new, pname, Identity())
        elif (h, w) == (1, 1):
            fixed = (
                AvgPool2d((hin, win), stride=1)
                if isinstance(pool, AdaptiveAvgPool2d)
                else MaxPool2d((hin, win), stride=1)
            )
            _set_module(new, pname, fixed)
        else:
            raise ValueError(
                f"to_fully_convolutional: {pname!r} ({type(pool).__name__} to {h}x{w}) sees a "
                f"{hin}x{win} map at input_size {size}: it is neither the identity nor a global "
                f"pool there, so its windows have no fixed size on a larger input; pass the "
                f"input_size at which it sees {h}x{w}"
            )
    _set_module(new, flat_name, Identity())
    kernel = (h, w)
    channels = c
    for name, m, _i, _o in head:
        if isinstance(m, Linear):
            conv = Conv2d(channels, m.out_features, kernel, bias=m.bias is not None)
            # (C_out, C_in * KH * KW) -> (C_out, C_in, KH, KW): Flatten's order is C, H, W
            conv.weight.data = m.weight.data.reshape(m.out_features, channels, *kernel).copy()
            if m.bias is not None:
                conv.bias.data = m.bias.data.copy()
            _set_module(new, name, conv)
            kernel, channels = (1, 1), m.out_features
    return new
