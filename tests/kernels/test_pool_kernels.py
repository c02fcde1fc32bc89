"""Pooling kernels: parity with torch.nn.functional and with slow loop references.

Every config is drawn from a seeded generator: odd/even/rectangular kernels,
stride 1-3, padding 0..kernel//2, dilation 1-3 (max pool), ceil_mode and
count_include_pad both ways, batch 1 and more, sizes not divisible by the
stride. Max-pool values and indices must match exactly; gradients within
float32 rtol=1e-5/atol=1e-6 (float64 rtol=1e-10/atol=1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.kernels import pool
from convscope.kernels.dispatch import call, call_on
from convscope.kernels.geometry import NO_PADS, as_pads, conv_output_size
from convscope.kernels.pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from convscope.kernels.reference import pool as reference
from parity import assert_kernel_close as close

DTYPES = [np.float32, np.float64]


def make_input(rng, shape, dtype, kind):
    """'normal' values, 'ties' (small integers: many equal maxima) or 'flat' (constant blocks)."""
    if kind == "ties":
        return rng.integers(-2, 3, shape).astype(dtype)
    if kind == "flat":
        x = np.zeros(shape, dtype)
        x[..., : shape[-2] // 2, :] = 1
        return x
    return rng.standard_normal(shape).astype(dtype)


def pool_config(seed, dilation=True):
    """A random valid pooling config (PyTorch's limits: padding <= kernel//2, output >= 1)."""
    rng = np.random.default_rng(seed)
    while True:
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2)) if dilation else (1, 1)
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        ceil = bool(rng.integers(0, 2))
        hw = tuple(int(v) for v in rng.integers(1, 14, 2))
        sizes = [
            conv_output_size(n, ki, si, pi, di, ceil)
            for n, ki, si, pi, di in zip(hw, k, s, p, d, strict=True)
        ]
        if min(sizes) >= 1:
            nc = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
            return rng, nc + hw, k, s, p, d, ceil


# ----------------------------------------------------------------- references


def ref_max_pool(x, k, s, p, d, ceil):
    return reference.max_pool2d_forward(x, k, s, as_pads(p), d, ceil)


def ref_scatter(g, idx, shape):
    return reference.max_pool2d_backward(g, idx, shape)


def ref_avg_pool(x, k, s, p, ceil, cip, dov, g=None):
    """Forward (g None) or backward (g given) of the reference backend's avg_pool2d."""
    if g is None:
        return reference.avg_pool2d_forward(x, k, s, as_pads(p), ceil, cip, dov)
    return reference.avg_pool2d_backward(g, x.shape, k, s, as_pads(p), ceil, cip, dov)


def ref_adaptive(x, out_hw, op):
    if op is np.max:
        return reference.adaptive_max_pool2d_forward(x, out_hw)[0]
    return reference.adaptive_avg_pool2d_forward(x, out_hw)


def on_backend(name, *args):
    """Pool kernel ``name`` on the active backend -> (result, backend that ran it)."""
    return call("pool", name, *args)


# ----------------------------------------------------------------- max pool


def torch_max(x, k, s, p, d, ceil, g):
    xt = torch.tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), idx.numpy(), xt.grad.numpy()


@pytest.mark.parametrize("seed", range(48))
def test_max_pool2d_matches_torch(seed, backend):
    rng, shape, k, s, p, d, ceil = pool_config(seed)
    dtype = DTYPES[seed % 2]
    x = make_input(rng, shape, dtype, ["normal", "ties", "flat"][seed % 3])
    (out, idx), ran = on_backend("max_pool2d_forward", x, k, s, as_pads(p), d, ceil)
    g = rng.standard_normal(out.shape).astype(dtype)
    t_out, t_idx, t_grad = torch_max(x, k, s, p, d, ceil, g)
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    close(call_on(ran, "pool", "max_pool2d_backward", g, idx, x.shape), t_grad, dtype, "grad")


@pytest.mark.parametrize("seed", range(16))
def test_max_pool2d_matches_loop_reference(seed):
    rng, shape, k, s, p, d, ceil = pool_config(1000 + seed)
    x = make_input(rng, shape, np.float64, ["normal", "ties"][seed % 2])
    out, idx = max_pool2d_forward(x, k, s, as_pads(p), d, ceil)
    r_out, r_idx = ref_max_pool(x, k, s, p, d, ceil)
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(idx, r_idx)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        max_pool2d_backward(g, idx, x.shape), ref_scatter(g, r_idx, x.shape), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("seed", range(12))
def test_max_pool2d_nan_and_neg_inf_like_torch(seed, backend):
    """A NaN always wins (the last NaN of a window); -inf windows report their first input."""
    rng, shape, k, s, p, d, ceil = pool_config(2000 + seed)
    x = rng.integers(-1, 2, shape).astype(np.float32)
    x[rng.random(shape) < 0.15] = np.nan
    x[rng.random(shape) < 0.4] = -np.inf
    (out, idx), ran = on_backend("max_pool2d_forward", x, k, s, as_pads(p), d, ceil)
    g = rng.standard_normal(out.shape).astype(np.float32)
    t_out, t_idx, t_grad = torch_max(x, k, s, p, d, ceil, g)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_array_equal(idx, ref_max_pool(x, k, s, p, d, ceil)[1])
    close(call_on(ran, "pool", "max_pool2d_backward", g, idx, x.shape), t_grad, np.float32, "grad")


@pytest.mark.parametrize("k,s", [((2, 2), (2, 2)), ((3, 3), (3, 3)), ((2, 3), (2, 3)), ((3, 3), (2, 2))])
def test_max_pool2d_tie_gradient_goes_to_one_element(k, s):
    x = np.ones((2, 3, 7, 9), np.float32)  # every window is one big tie
    out, idx = max_pool2d_forward(x, k, s, NO_PADS, (1, 1), False)
    g = np.ones(out.shape, np.float32)
    grad = max_pool2d_backward(g, idx, x.shape)
    t_out, t_idx, t_grad = torch_max(x, k, s, (0, 0), (1, 1), False, g)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_array_equal(grad, t_grad)
    # the window's first element (its top-left corner) takes the whole gradient
    corners = (np.arange(out.shape[2])[:, None] * s[0]) * x.shape[3] + np.arange(out.shape[3]) * s[1]
    np.testing.assert_array_equal(idx, np.broadcast_to(corners, idx.shape))
    assert grad.sum() == g.sum() and np.count_nonzero(grad) == np.unique(corners).size * 6


@pytest.mark.parametrize("seed", range(8))
def test_max_pool2d_padded_and_unpadded_paths_agree(seed, monkeypatch):
    """Forcing the padded-canvas path (copy + -inf fix-up) changes nothing."""
    rng = np.random.default_rng(seed)
    x = make_input(rng, (2, 3, 9, 8), np.float32, ["normal", "ties"][seed % 2])
    x[0, 0, :2, :2] = -np.inf
    k = [(2, 2), (3, 3), (2, 3), (1, 2)][seed % 4]
    fast = max_pool2d_forward(x, k, k, NO_PADS, (1, 1), False)
    real_padded = pool._padded
    monkeypatch.setattr(pool, "_padded", lambda *a: np.array(real_padded(*a), copy=True))
    slow = max_pool2d_forward(x, k, k, NO_PADS, (1, 1), False)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


# ----------------------------------------------------------------- avg pool


@pytest.mark.parametrize("seed", range(48))
def test_avg_pool2d_matches_torch(seed, backend):
    rng, shape, k, s, p, _, ceil = pool_config(4000 + seed, dilation=False)
    dtype = DTYPES[seed % 2]
    cip = bool(seed // 2 % 2)
    dov = None if seed % 5 else int(rng.integers(1, 7))
    x = make_input(rng, shape, dtype, "normal")
    xt = torch.tensor(x, requires_grad=True)
    t_out = F.avg_pool2d(xt, k, s, p, ceil, cip, dov)
    out, ran = on_backend("avg_pool2d_forward", x, k, s, as_pads(p), ceil, cip, dov)
    close(out, t_out, dtype, "forward")
    g = rng.standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    grad = call_on(ran, "pool", "avg_pool2d_backward", g, x.shape, k, s, as_pads(p), ceil, cip, dov)
    close(grad, xt.grad, dtype, "grad")


@pytest.mark.parametrize("seed", range(16))
def test_avg_pool2d_matches_loop_reference(seed):
    rng, shape, k, s, p, _, ceil = pool_config(5000 + seed, dilation=False)
    cip, dov = bool(seed % 2), (None if seed % 3 else 3)
    x = rng.standard_normal(shape)
    out = avg_pool2d_forward(x, k, s, as_pads(p), ceil, cip, dov)
    np.testing.assert_allclose(out, ref_avg_pool(x, k, s, p, ceil, cip, dov), rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        avg_pool2d_backward(g, x.shape, k, s, as_pads(p), ceil, cip, dov),
        ref_avg_pool(x, k, s, p, ceil, cip, dov, g=g),
        rtol=1e-12,
        atol=1e-14,
    )


# ceil_mode windows that run past the padded border: the divisor is the window
# clipped to input+padding (count_include_pad=True) or to the input (False)
@pytest.mark.parametrize(
    "hw,k,s,p",
    [
        ((5, 5), 3, 2, 1),
        ((6, 6), 3, 2, 1),
        ((4, 7), 2, 3, 1),
        ((7, 4), 3, 3, 0),
        ((5, 6), 4, 3, 2),
        ((3, 3), 2, 2, 0),
    ],
)
@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool2d_ceil_mode_border_divisor(hw, k, s, p, cip):
    x = np.random.default_rng(0).standard_normal((1, 2) + hw).astype(np.float32)
    kw = (k, k), (s, s), (p, p), True, cip
    expected = F.avg_pool2d(torch.from_numpy(x), k, s, p, True, cip)
    close(avg_pool2d_forward(x, (k, k), (s, s), as_pads(p), True, cip), expected, np.float32, "forward")
    close(
        avg_pool2d_forward(x, (k, k), (s, s), as_pads(p), True, cip),
        ref_avg_pool(x, *kw, None),
        np.float32,
        "reference",
    )


# ----------------------------------------------------------------- adaptive


def adaptive_config(seed):
    rng = np.random.default_rng(6000 + seed)
    hw = tuple(int(v) for v in rng.integers(1, 17, 2))
    kind = seed % 4
    if kind == 0:
        out_hw = (1, 1)
    elif kind == 1:  # divisible
        out_hw = tuple(n // int(rng.integers(1, 4)) or 1 for n in hw)
        hw = tuple(o * (n // o) for o, n in zip(out_hw, hw, strict=True))
    else:  # anything, including larger than the input
        out_hw = tuple(int(v) for v in rng.integers(1, 12, 2))
    return rng, (int(rng.integers(1, 4)), int(rng.integers(1, 3))) + hw, out_hw


@pytest.mark.parametrize("seed", range(32))
def test_adaptive_avg_pool2d_matches_torch(seed, backend):
    rng, shape, out_hw = adaptive_config(seed)
    dtype = DTYPES[seed % 2]
    x = make_input(rng, shape, dtype, "normal")
    xt = torch.tensor(x, requires_grad=True)
    t_out = F.adaptive_avg_pool2d(xt, out_hw)
    out, ran = on_backend("adaptive_avg_pool2d_forward", x, out_hw)
    close(out, t_out, dtype, "forward")
    close(out, ref_adaptive(x, out_hw, np.mean), dtype, "reference")
    g = rng.standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    close(call_on(ran, "pool", "adaptive_avg_pool2d_backward", g, x.shape), xt.grad, dtype, "grad")


@pytest.mark.parametrize("seed", range(32))
def test_adaptive_max_pool2d_matches_torch(seed, backend):
    rng, shape, out_hw = adaptive_config(seed)
    dtype = DTYPES[seed % 2]
    x = make_input(rng, shape, dtype, ["normal", "ties", "flat"][seed % 3])
    xt = torch.tensor(x, requires_grad=True)
    t_out, t_idx = F.adaptive_max_pool2d(xt, out_hw, return_indices=True)
    (out, idx), ran = on_backend("adaptive_max_pool2d_forward", x, out_hw)
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, ref_adaptive(x, out_hw, np.max))
    g = rng.standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    close(call_on(ran, "pool", "adaptive_max_pool2d_backward", g, idx, x.shape), xt.grad, dtype, "grad")


@pytest.mark.parametrize("out_hw", [(1, 1), (2, 3), (3, 3), (5, 4)])
def test_adaptive_pools_with_nan_and_inf_stay_local(out_hw):
    """A NaN/inf reaches only the windows that contain it (no 0*inf leaks)."""
    rng = np.random.default_rng(7)
    x = rng.integers(-1, 2, (2, 2, 7, 6)).astype(np.float32)
    x[0, 0, 1, 1], x[0, 1, 5, 4], x[1, 0, 3, 0] = np.nan, np.inf, -np.inf
    x[1, 1, 2:4, 2:4] = np.nan
    out, idx = adaptive_max_pool2d_forward(x, out_hw)
    t_out, t_idx = F.adaptive_max_pool2d(torch.from_numpy(x), out_hw, return_indices=True)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    close(
        adaptive_avg_pool2d_forward(x, out_hw),
        F.adaptive_avg_pool2d(torch.from_numpy(x), out_hw),
        np.float32,
        "avg",
    )


def test_global_and_divisible_fast_paths_keep_float32():
    x = np.random.default_rng(1).standard_normal((3, 4, 8, 8)).astype(np.float32)
    for out_hw in [(1, 1), (2, 2), (4, 8)]:
        out = adaptive_avg_pool2d_forward(x, out_hw)
        assert out.dtype == np.float32
        assert adaptive_avg_pool2d_backward(out, x.shape).dtype == np.float32
        close(out, ref_adaptive(x, out_hw, np.mean), np.float32, f"{out_hw}")


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,ceil",
    [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 2), (2, 1), (1, 1), (2, 1), True)],
)
def test_max_pool_without_indices_gives_the_same_maximum(kernel, stride, padding, dilation, ceil):
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 8)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    full, idx = max_pool2d_forward(x, kernel, stride, as_pads(padding), dilation, ceil)
    only, none = max_pool2d_forward(x, kernel, stride, as_pads(padding), dilation, ceil, need_indices=False)
    np.testing.assert_array_equal(only, full)
    assert none is None and idx is not None
