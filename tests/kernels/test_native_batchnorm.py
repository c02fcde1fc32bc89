"""Native batch-norm kernels against PyTorch at the project's float32 tolerances (rtol 1e-5,
atol 1e-6), on the shapes of test_batchnorm_kernels (threads, long rows, (N, C), a mean far
from zero), non-contiguous inputs and batch 1; eval-mode affine and channel sums too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from convscope.kernels import batchnorm as numpy_bn
from convscope.kernels.native import batchnorm as K
from convscope.kernels.native._unsupported import Unsupported
from parity import assert_close

pytestmark = pytest.mark.native

SHAPES = [(64, 16, 32, 32), (3, 4, 70, 70), (5, 3, 9000), (40, 7), (1, 5, 6, 7)]


def _torch_bn(x, w, b, g):
    xt = torch.tensor(x, requires_grad=True)
    wt = None if w is None else torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    out = TF.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    out.backward(torch.tensor(g))
    return out.detach().numpy(), [None if t is None else t.grad.numpy() for t in (xt, wt, bt)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("offset", [0.0, 20.0])
@pytest.mark.parametrize("affine", [True, False])
def test_train_forward_backward_match_torch(shape, offset, affine):
    rng = np.random.default_rng(len(shape) * 100 + shape[1])
    c = shape[1]
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    x = (rng.standard_normal(shape) * 2 + offset + rng.standard_normal(per_channel)).astype(np.float32)
    if shape[0] == 3:  # a non-contiguous view with the same values
        x = np.asfortranarray(x)
    w = rng.uniform(0.5, 1.5, c).astype(np.float32) if affine else None
    b = rng.standard_normal(c).astype(np.float32) if affine else None
    g = rng.standard_normal(shape).astype(np.float32)
    out, mean, var, invstd = K.batch_norm_train_forward(x, w, b, 1e-5)
    gx, gw, gb = K.batch_norm_train_backward(g, x, mean, invstd, w)
    # the oracle on a C-ordered copy (PyTorch's float32 path for other layouts is less accurate)
    ref_out, (ref_gx, ref_gw, ref_gb) = _torch_bn(np.ascontiguousarray(x), w, b, g)
    axes = (0,) + tuple(range(2, len(shape)))
    f32 = np.float32
    assert_close(mean, x.astype(np.float64).mean(axis=axes).astype(f32), f32, "mean")
    assert_close(var, x.astype(np.float64).var(axis=axes).astype(f32), f32, "biased var")
    assert_close(out, ref_out, f32, "output")
    assert_close(gx, ref_gx, f32, "grad_input")
    if affine:
        xhat = (x - mean.reshape(per_channel)) * invstd.reshape(per_channel)
        assert_close(gw, ref_gw, f32, "grad_weight", magnitude=np.abs(g * xhat).sum(axis=axes))
        assert_close(gb, ref_gb, f32, "grad_bias", magnitude=np.abs(g).sum(axis=axes))


def test_eval_affine_and_channel_sums_match_numpy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 5, 9, 11)).astype(np.float32)
    scale, shift = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    expected = numpy_bn.channel_affine(x, scale, shift)
    assert_close(K.channel_affine(x, scale, shift), expected, np.float32, "affine")
    sums = K.channel_sums(x)
    assert sums.dtype == np.float32
    assert_close(sums, x.astype(np.float64).sum(axis=(0, 2, 3)).astype(np.float32), np.float32, "sums")


def test_float64_is_left_to_numpy():
    x = np.zeros((2, 3, 4), dtype=np.float64)
    with pytest.raises(Unsupported):
        K.batch_norm_train_forward(x, None, None, 1e-5)
    with pytest.raises(Unsupported):
        K.channel_sums(x.astype(np.float32), x.astype(np.float32))
