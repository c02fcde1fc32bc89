"""Padding and resampling kernels: parity with F.pad and F.interpolate.

Seeded random configs cover every pad mode (with negative pads = crops, 1-3
padded dims, 2-5 dim inputs) and nearest/(bi)linear resizing by size and by
scale factor, align_corners both ways, up- and down-sampling. Forward and the
input gradient of a random upstream gradient are compared; float32 within
rtol=1e-5/atol=1e-6, float64 within rtol=1e-10/atol=1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.kernels import resample
from convscope.kernels.pad import pad_backward, pad_forward
from convscope.kernels.resample import (
    interpolate_backward,
    interpolate_forward,
    linear_source_weights,
    nearest_source_index,
)
from parity import TOL  # the project's float32/float64 tolerances
from parity import assert_kernel_close as close

DTYPES = [np.float32, np.float64]
MODES = ["constant", "reflect", "replicate", "circular"]


# ----------------------------------------------------------------- pad


def pad_config(seed):
    """Random valid F.pad arguments. Limits are checked on the cropped size: PyTorch
    checks reflect/circular pads against the uncropped dim and then reads past the
    cropped one (circular returns uninitialised memory), so callers must do better."""
    rng = np.random.default_rng(seed)
    mode = MODES[seed % 4]
    n_pad = int(rng.integers(1, 4))
    extra = int(rng.integers(0, 3)) if mode == "constant" else int(rng.integers(1, 3))
    shape = tuple(int(v) for v in rng.integers(1, 7, n_pad + extra))
    pads = []
    for i in range(n_pad):
        n = shape[-1 - i]
        crop = [-int(rng.integers(0, (n - 1) // 2 + 1)) if rng.random() < 0.3 else None for _ in range(2)]
        kept = n + sum(c for c in crop if c)
        limit = {"reflect": kept - 1, "circular": kept}.get(mode, 4)
        pads += [int(rng.integers(0, limit + 1)) if c is None else c for c in crop]
    return rng, mode, shape, pads


@pytest.mark.parametrize("seed", range(64))
def test_pad_matches_torch(seed):
    rng, mode, shape, pads = pad_config(seed)
    dtype = DTYPES[seed // 4 % 2]
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    t_out = F.pad(xt, pads, mode=mode, value=1.5) if mode == "constant" else F.pad(xt, pads, mode=mode)
    out = pad_forward(x, pads, mode, 1.5)
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    assert out.dtype == dtype and not np.shares_memory(out, x)
    g = rng.standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    close(pad_backward(g, x.shape, pads, mode), xt.grad, dtype, f"{mode} {pads} grad")


@pytest.mark.parametrize("mode", MODES)
def test_pad_crop_then_wrap(mode):
    """Negative pads crop first, then the cropped array is padded (matters for circular)."""
    x = np.arange(5.0).reshape(1, 1, 5)
    expected = {
        "constant": [1, 2, 3, 4, 0, 0],
        "reflect": [1, 2, 3, 4, 3, 2],
        "replicate": [1, 2, 3, 4, 4, 4],
        "circular": [1, 2, 3, 4, 1, 2],
    }[mode]
    np.testing.assert_array_equal(pad_forward(x, (-1, 2), mode)[0, 0], expected)
    np.testing.assert_array_equal(F.pad(torch.from_numpy(x), (-1, 2), mode=mode)[0, 0].numpy(), expected)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_backward_accumulates(mode):
    """Every output copied from an input sends its gradient back to it."""
    grad = pad_backward(np.ones((1, 1, 9)), (1, 1, 5), (2, 2), mode)
    expected = {"reflect": [1, 2, 3, 2, 1], "replicate": [3, 1, 1, 1, 3], "circular": [2, 2, 1, 2, 2]}[mode]
    np.testing.assert_array_equal(grad[0, 0], expected)


# ----------------------------------------------------------------- interpolate


def interp_config(seed):
    rng = np.random.default_rng(100 + seed)
    dims = 2 if seed % 6 else 1
    mode = ["nearest", "bilinear" if dims == 2 else "linear"][seed % 2]
    align = bool(seed // 2 % 2) if mode != "nearest" else False
    while True:
        ins = [int(v) for v in rng.integers(1, 13, dims)]
        if seed % 3 == 0:
            scale = [
                float(rng.choice([0.5, 0.7, 1.3, 1.5, 2.0, 2.5, 3.0, rng.uniform(0.3, 3.5)]))
                for _ in range(dims)
            ]
            outs = [math.floor(n * s) for n, s in zip(ins, scale, strict=True)]
        else:
            scale, outs = None, [int(v) for v in rng.integers(1, 25, dims)]
        if min(outs) >= 1:
            shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(ins)
            return rng, mode, align, shape, outs, scale


def torch_interp(xt, mode, align, outs, scale):
    kw = {} if mode == "nearest" else {"align_corners": align}
    if scale is not None:
        return F.interpolate(xt, scale_factor=scale, mode=mode, **kw)
    return F.interpolate(xt, size=outs, mode=mode, **kw)


@pytest.mark.parametrize("seed", range(72))
def test_interpolate_matches_torch(seed):
    check_interpolate(seed)


@pytest.mark.parametrize("seed", range(1, 72, 4))
def test_interpolate_gather_path_matches_torch(seed, monkeypatch):
    """The gather path (long axes, or NaN/inf present) instead of the dense-matrix path."""
    monkeypatch.setattr(resample, "_DENSE_MAX", 0)
    check_interpolate(seed)


@pytest.mark.parametrize("align", [True, False])
def test_bilinear_nan_and_inf_stay_local(align):
    x = np.random.default_rng(3).standard_normal((1, 2, 6, 7)).astype(np.float32)
    x[0, 0, 2, 3], x[0, 1, 4, 1] = np.nan, np.inf
    out = interpolate_forward(x, (11, 13), "bilinear", align)
    expected = F.interpolate(torch.from_numpy(x), (11, 13), mode="bilinear", align_corners=align).numpy()
    np.testing.assert_allclose(out, expected, equal_nan=True, **TOL[np.float32])
    assert 0 < np.isnan(out).sum() < out.size // 4


def check_interpolate(seed):
    rng, mode, align, shape, outs, scale = interp_config(seed)
    dtype = DTYPES[seed // 3 % 2]
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    t_out = torch_interp(xt, mode, align, outs, scale)
    out = interpolate_forward(x, tuple(outs), mode, align, scale)
    close(out, t_out, dtype, "forward")
    g = rng.standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    close(interpolate_backward(g, x.shape, tuple(outs), mode, align, scale), xt.grad, dtype, "grad")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_2d_index_rule_over_many_sizes(dtype):
    """Every (in, out) pair up to 30x60 and many scale factors: same source pixel as torch."""
    rng = np.random.default_rng(5)
    cases = [(n, m, None) for n in range(1, 31) for m in range(1, 61)]
    for n in rng.integers(1, 40, 400):
        s = float(rng.choice([0.3, 0.5, 0.7, 1.3, 1.5, 2.0, 2.5, 3.0, rng.uniform(0.2, 4.0)]))
        if math.floor(n * s) >= 1:
            cases.append((int(n), math.floor(n * s), s))
    x = torch.arange(64, dtype=torch.float32).reshape(1, 1, 1, 64)
    for n, m, s in cases:
        xt = x[..., :n]
        y = F.interpolate(xt, scale_factor=(1.0, s), mode="nearest") if s else F.interpolate(xt, (1, m))
        np.testing.assert_array_equal(
            nearest_source_index(n, m, s, 2, dtype),
            y[0, 0, 0].long().numpy(),
            err_msg=f"in={n} out={m} scale_factor={s}",
        )


def test_nearest_1d_uses_no_shortcut_and_backward_is_adjoint():
    """1-D nearest has no out == in shortcut in PyTorch's forward (2-D does). PyTorch's
    1-D backward does apply it, so its gradient is not the adjoint of its forward there;
    ours is."""
    x = np.arange(10.0).reshape(1, 1, 10)
    s = 1.0366677749132005  # floor(10 * s) == 10
    out = interpolate_forward(x, (10,), "nearest", False, s)
    np.testing.assert_array_equal(out, F.interpolate(torch.from_numpy(x), scale_factor=s).numpy())
    np.testing.assert_array_equal(out[0, 0], [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    g = np.random.default_rng(0).standard_normal(out.shape)
    grad = interpolate_backward(g, x.shape, (10,), "nearest", False, s)
    np.testing.assert_allclose((grad * x).sum(), (g * out).sum(), rtol=1e-12)
    out2d = interpolate_forward(x[:, :, None], (1, 10), "nearest", False, (1.0, s))
    np.testing.assert_array_equal(out2d[0, 0, 0], np.arange(10.0))  # 2-D: shortcut


@pytest.mark.parametrize("align", [True, False])
@pytest.mark.parametrize(
    "n_in,n_out,scale",
    [(4, 8, None), (5, 3, None), (6, 1, None), (1, 4, None), (7, 10, 1.5), (7, 17, 2.5), (9, 4, 0.5)],
)
def test_linear_weights_interpolate_and_clamp(align, n_in, n_out, scale):
    i0, i1, l0, l1 = linear_source_weights(n_in, n_out, align, scale, np.float64)
    assert (np.diff(i0) >= 0).all() and (i0 >= 0).all() and (i1 <= n_in - 1).all()
    np.testing.assert_allclose(l0 + l1, 1.0)
    assert (l1 >= 0).all() and (l1 <= 1).all()
    ratio = 1 / scale if scale else n_in / n_out
    if not align and 0.5 * ratio - 0.5 < 0 and n_in != n_out:  # upsampling: clamped to pixel 0
        assert i0[0] == 0 and l1[0] == 0.0
    x = np.arange(n_in, dtype=np.float64).reshape(1, 1, 1, n_in)
    kw = dict(align_corners=align)
    t = (
        F.interpolate(torch.from_numpy(x), scale_factor=(1.0, scale), mode="bilinear", **kw)
        if scale
        else F.interpolate(torch.from_numpy(x), size=(1, n_out), mode="bilinear", **kw)
    )
    np.testing.assert_allclose(l0 * i0 + l1 * i1, t[0, 0, 0].numpy(), rtol=1e-12, atol=1e-12)


def test_interpolate_keeps_float32_and_copies():
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 5)).astype(np.float32)
    for mode in ["nearest", "bilinear"]:
        out = interpolate_forward(x, (5, 5), mode, False)
        assert out.dtype == np.float32 and not np.shares_memory(out, x)
        np.testing.assert_array_equal(out, x)
        up = interpolate_forward(x, (11, 7), mode, True)
        assert up.dtype == np.float32
        assert interpolate_backward(up, x.shape, (11, 7), mode, True).dtype == np.float32


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize(
    "in_hw,out_hw", [((5, 4), (10, 8)), ((3, 4), (9, 12)), ((6, 8), (3, 4)), ((4, 4), (4, 4))]
)
def test_interpolate_integer_factors_match_torch(mode, in_hw, out_hw):
    """Integer up/down-sampling takes the strided-slice adjoint; same result as torch."""
    rng = np.random.default_rng(sum(in_hw + out_hw))
    x = rng.standard_normal((2, 3) + in_hw).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    kw = {} if mode == "nearest" else {"align_corners": False}
    t_out = F.interpolate(xt, size=out_hw, mode=mode, **kw)
    close(interpolate_forward(x, out_hw, mode, False), t_out, np.float32, "forward")
    g = rng.standard_normal(t_out.shape).astype(np.float32)
    t_out.backward(torch.from_numpy(g))
    close(interpolate_backward(g, x.shape, out_hw, mode, False), xt.grad, np.float32, "grad")
