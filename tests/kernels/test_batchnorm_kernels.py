"""Batch-norm kernels on the sizes the layer tests do not reach: many chunks in threads,
spatial runs longer than one BLAS dot (``DOT_RUN``), and a mean far from zero.

Reference: torch.nn.functional.batch_norm in the same dtype, forward and all gradients, at
the project's tolerances (float32 rtol 1e-5 / atol 1e-6, float64 1e-10 / 1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from convscope.kernels import batchnorm as K
from convscope.kernels.dispatch import call, call_on
from parity import assert_close

SHAPES = [
    (64, 16, 32, 32),  # ResNet-20 stage 1: 16 chunks, run in threads
    (3, 4, 70, 70),  # 4,900 pixels per channel: two dot runs, the second partial
    (5, 3, 9000),  # (N, C, L) with L > 2 runs
    (40, 7),  # (N, C): one pixel per channel
]


def _torch_bn(x, w, b, g):
    xt = torch.tensor(x, requires_grad=True)
    wt = None if w is None else torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    out = TF.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    out.backward(torch.tensor(g))
    grads = [t.grad.numpy() if t is not None else None for t in (xt, wt, bt)]
    return out.detach().numpy(), grads


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 20.0])
def test_train_forward_backward_match_torch(shape, dtype, offset, backend):
    rng = np.random.default_rng(len(shape) * 100 + shape[1])
    c = shape[1]
    per_channel = (1, c) + (1,) * (len(shape) - 2)  # (C,) -> broadcast against x
    x = (rng.standard_normal(shape) * 2 + offset + rng.standard_normal(per_channel)).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    (out, mean, var, invstd), ran = call("batchnorm", "batch_norm_train_forward", x, w, b, 1e-5)
    gx, gw, gb = call_on(ran, "batchnorm", "batch_norm_train_backward", g, x, mean, invstd, w)
    ref_out, (ref_gx, ref_gw, ref_gb) = _torch_bn(x, w, b, g)
    axes = (0,) + tuple(range(2, len(shape)))
    assert_close(mean, x.astype(np.float64).mean(axis=axes).astype(dtype), dtype, "mean")
    assert_close(var, x.astype(np.float64).var(axis=axes).astype(dtype), dtype, "biased var")
    assert_close(out, ref_out, dtype, "output")
    assert_close(gx, ref_gx, dtype, "grad_input")
    xhat = (x - mean.reshape(per_channel)) * invstd.reshape(per_channel)
    assert_close(gw, ref_gw, dtype, "grad_weight", magnitude=np.abs(g * xhat).sum(axis=axes))
    assert_close(gb, ref_gb, dtype, "grad_bias", magnitude=np.abs(g).sum(axis=axes))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_affine_and_no_input_grad(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 11, 13)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    out, mean, _, invstd = K.batch_norm_train_forward(x, None, None, 1e-5)
    gx, gw, gb = K.batch_norm_train_backward(g, x, mean, invstd, None, need_input=False)
    ref_out, (ref_gx, _, _) = _torch_bn(x, None, None, g)
    assert gx is None
    assert_close(out, ref_out, dtype, "output")
    # without affine parameters, the "weight" and "bias" sums are still the per-channel
    # sums of g * xhat and g that an affine layer would receive
    axes = (0, 2, 3)
    xhat = (x - mean.reshape(1, -1, 1, 1)) * invstd.reshape(1, -1, 1, 1)
    assert_close(
        gw,
        (g * xhat).sum(axis=axes, dtype=np.float64).astype(dtype),
        dtype,
        "sum g*xhat",
        magnitude=np.abs(g * xhat).sum(axis=axes),
    )
    assert_close(
        gb,
        g.sum(axis=axes, dtype=np.float64).astype(dtype),
        dtype,
        "sum g",
        magnitude=np.abs(g).sum(axis=axes),
    )


def test_channel_sums_long_runs():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 2, 10000)).astype(np.float32)
    b = rng.standard_normal(a.shape).astype(np.float32)
    ref_a = a.sum(axis=(0, 2), dtype=np.float64)
    ref_ab = (a.astype(np.float64) * b).sum(axis=(0, 2))
    assert_close(
        K.channel_sums(a), ref_a.astype(np.float32), np.float32, "sum", magnitude=np.abs(a).sum(axis=(0, 2))
    )
    assert_close(
        K.channel_sums(a, b),
        ref_ab.astype(np.float32),
        np.float32,
        "sum of products",
        magnitude=np.abs(a * b).sum(axis=(0, 2)),
    )


@pytest.mark.parametrize(
    "mean,std,first_offset",
    [(1000.0, 1.0, 0.0), (1000.0, 0.1, 0.0), (-3e4, 1.0, 0.0), (1e4, 10.0, 0.0), (1000.0, 1.0, 10.0)],
)
def test_large_mean_keeps_float32_precision(mean, std, first_offset):
    # the statistics and both passes work on x - (first mean estimate), exact near the mean, so
    # a mean 1e3-3e4 times the spread costs no precision; g correlated with xhat makes the
    # mean(g * xhat) term large (measured: the earlier formulas and PyTorch's are 6e-5 to 6e-4
    # off in dx here, this kernel ~2e-6). Reference: float64 maths on the same float32 inputs.
    rng = np.random.default_rng(int(abs(mean) + 10 * std))
    x = rng.standard_normal((32, 4, 16, 16)) * std + mean
    x[:4] += first_offset  # a first chunk unlike the rest (the shift is taken from it)
    x = x.astype(np.float32)
    w = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=(0, 2, 3), keepdims=True)
    sd = np.sqrt(x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    xhat = (x64 - mu) / sd
    g = (xhat + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    ref_out, (ref_gx, ref_gw, ref_gb) = _torch_bn(
        x64, w.astype(np.float64), b.astype(np.float64), g.astype(np.float64)
    )
    out, m, _, invstd = K.batch_norm_train_forward(x, w, b, 1e-5)
    gx, gw, gb = K.batch_norm_train_backward(g, x, m, invstd, w)
    for ours, ref, what in ((out, ref_out, "output"), (gx, ref_gx, "grad_input")):
        err = np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max()
        assert err <= 1e-5, f"{what}: max error {err:.2e} of the largest value"
    # the parameter gradients are sums whose terms cancel: relative to the sum of |terms|
    axes = (0, 2, 3)
    for ours, ref, terms, what in ((gw, ref_gw, g * xhat, "grad_weight"), (gb, ref_gb, g, "grad_bias")):
        err = np.abs(ours.astype(np.float64) - ref) / np.abs(terms).sum(axis=axes)
        assert err.max() <= 1e-6, f"{what}: error {err.max():.2e} of the sum of |terms|"
