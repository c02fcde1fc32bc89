"""Kernel calls through the backend dispatcher, as the ops make them: a forward runs on the
active backend (NumPy where it has no version) and its backward on the same backend."""

from __future__ import annotations

from convscope.kernels.dispatch import call, call_on


def forward_backward(family: str, forward: str, backward: str):
    """(run_forward, run_backward): forward(*args) -> (result, backend); backward(backend, *args)."""

    def run_forward(*args, **kwargs):
        return call(family, forward, *args, **kwargs)

    def run_backward(backend, *args, **kwargs):
        return call_on(backend, family, backward, *args, **kwargs)

    return run_forward, run_backward


def conv2d(x, w, b, stride, pads, dilation, groups):
    """(out, saved, backward(g, saved) -> (gx, gw, gb)) on the active backend."""
    (out, saved), backend = call("conv", "conv2d_forward", x, w, b, stride, pads, dilation, groups)
    return out, saved, lambda g, s: call_on(backend, "conv", "conv2d_backward", g, s)


def conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    """(out, saved, backward(g, saved)) of the transposed convolution on the active backend."""
    (out, saved), backend = call(
        "conv", "conv_transpose2d_forward", x, w, b, stride, padding, output_padding, dilation, groups
    )
    return out, saved, lambda g, s: call_on(backend, "conv", "conv_transpose2d_backward", g, s)
