"""Float32 round-off of the native convolution on deep layers: as small as PyTorch's.

Each output of a convolution with 512 input channels and a 3x3 kernel sums K = 4608
products. The native tiles once summed all K in one register accumulator, which left a
relative rms error of 5.8e-7 (forward) and 8.1e-7 (input gradient) against the float64
result where PyTorch's float32 has 1.5e-7 and 1.8e-7 (and, through 30 such layers,
ReLUs whose float64 input is a few float32 roundings from zero took the other side).
They now sum runs of about 256 products and add the runs' sums to a running total, the way
a GEMM's K-blocking does.

The bound: the rms relative error of native float32 against float64 is at most 1.5x that
of PyTorch's float32 on the same data (before the fix it was 3-4.5x).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convscope as cs
from convscope.kernels.native import conv as native_conv

pytestmark = pytest.mark.native

#: native float32 error / PyTorch float32 error, both against float64
RATIO = 1.5


def _rms_rel(a: np.ndarray, ref: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean((a - ref) ** 2) / np.mean(ref**2)))


def _torch(x, w, g, dtype, stride):
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    wt = torch.tensor(w.astype(dtype), requires_grad=True)
    y = F.conv2d(xt, wt, None, stride, 1)
    y.backward(torch.tensor(g.astype(dtype)))
    return y.detach().double().numpy(), xt.grad.double().numpy(), wt.grad.double().numpy()


@pytest.mark.parametrize(
    "c_in, c_out, size, stride",
    [
        (512, 512, 2, 1),  # C_out a multiple of 64: the output-channel-vector tile
        (512, 200, 4, 1),  # the flat tile
        (256, 512, 4, 2),  # stride 2: input gradient per stride phase
    ],
)
def test_deep_conv_float32_error_is_near_pytorchs(c_in, c_out, size, stride):
    assert "native" in cs.backends.available()
    rng = np.random.default_rng(7)
    # post-ReLU inputs (all >= 0) and He-initialised weights, as inside a ResNet
    x = np.maximum(rng.standard_normal((4, c_in, size, size)), 0).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
    out_size = (size + 2 - 3) // stride + 1
    g = rng.standard_normal((4, c_out, out_size, out_size)).astype(np.float32)
    exact = _torch(x, w, g, np.float64, stride)
    theirs = _torch(x, w, g, np.float32, stride)
    y, saved = native_conv.conv2d_forward(x, w, None, (stride, stride), ((1, 1), (1, 1)), (1, 1), 1)
    gx, gw, _ = native_conv.conv2d_backward(g, saved)
    names = ("forward", "input gradient", "weight gradient")
    for what, ours, t32, ref in zip(names, (y, gx, gw), theirs, exact, strict=True):
        assert ours.dtype == np.float32
        err, err_torch = _rms_rel(ours, ref), _rms_rel(t32, ref)
        assert err <= RATIO * err_torch, (
            f"{what}: native float32 rms error {err:.3g} against float64, PyTorch's float32 {err_torch:.3g} "
            f"(expected at most {RATIO}x)"
        )
