"""Native (compiled C) convolution kernels: a randomized cross-check against PyTorch float64
and the NumPy kernels, on random shapes, strides 1-4, asymmetric paddings, dilations,
kernels 1x1 to 11x11 and 1xK, batch 1 and odd batches, non-contiguous inputs.

Tolerance: as in test_conv_kernels, every value is a sum of products, and its error is
bounded relative to S = the same sum over absolute values: ``|ours - ref| <= 1e-6 + 1e-5*S``
(float32). A wrong or missing tap moves a value by a whole term, about S/n.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.kernels import conv as numpy_conv
from convscope.kernels.native import build_info, isa, load_error
from convscope.kernels.native import conv as native_conv
from convscope.kernels.native._unsupported import Unsupported
from convscope.kernels.parallel import get_num_threads, set_num_threads

pytestmark = pytest.mark.native

RTOL, ATOL = 1e-5, 1e-6


def _close(ours, ref, scale, what):
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    assert ours.dtype == np.float32, f"{what}: dtype {ours.dtype}"
    err = np.abs(ours.astype(np.float64) - ref)
    bound = ATOL + RTOL * scale
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), f"{what}: err {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}"


def _torch_grads(fn, arrays, g):
    ts = [None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(g, dtype=torch.float64))
    return [out.detach().numpy()] + [None if t is None else t.grad.numpy() for t in ts]


def _noncontiguous(a: np.ndarray, rng) -> np.ndarray:
    """The same values as a strided view (every other element of a bigger array)."""
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    big[..., 1::2] = rng.standard_normal(a.shape).astype(a.dtype)
    view = big[..., ::2]
    assert not view.flags.c_contiguous
    return view


def _config(seed: int):
    rng = np.random.default_rng(seed)
    if seed % 5 == 0:  # a 1-D kernel (Conv1d runs as 1xK)
        kh, kw = 1, int(rng.integers(1, 8))
    else:
        kh, kw = (int(v) for v in rng.integers(1, 12, 2))
    sh, sw = (int(rng.choice([1, 1, 2, 3, 4])) for _ in range(2))
    dh, dw = (int(rng.choice([1, 1, 1, 2])) for _ in range(2))
    pads = tuple(tuple(int(v) for v in rng.integers(0, 4, 2)) for _ in range(2))
    n = int(rng.choice([1, 1, 3, 5]))
    c_in, c_out = int(rng.integers(1, 9)), int(rng.integers(1, 10))
    h = max(1, dh * (kh - 1) + 1 - pads[0][0] - pads[0][1]) + int(rng.integers(0, 12))
    w = max(1, dw * (kw - 1) + 1 - pads[1][0] - pads[1][1]) + int(rng.integers(0, 12))
    if kh == 1 and seed % 5 == 0:
        h, pads = 1, ((0, 0), pads[1])
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = rng.standard_normal((c_out, c_in, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32) if seed % 3 else None
    if seed % 2:
        x = _noncontiguous(x, rng)
    return x, weight, bias, (sh, sw), pads, (dh, dw)


def _run_and_compare(x, weight, bias, stride, pads, dilation, what):
    out, saved = native_conv.conv2d_forward(x, weight, bias, stride, pads, dilation, 1)
    g = np.random.default_rng(len(what)).standard_normal(out.shape).astype(np.float32)
    gx, gw, gb = native_conv.conv2d_backward(g, saved, True, True, True)
    (pt, pb), (pl, pr) = pads

    def conv(x_, w_, b_):
        return F.conv2d(F.pad(x_, (pl, pr, pt, pb)), w_, b_, stride, 0, dilation)

    arrays = [x, weight, bias]
    ref = _torch_grads(conv, arrays, g)
    scale = _torch_grads(conv, [None if a is None else np.abs(a) for a in arrays], np.abs(g))
    ours = [out, gx, gw, gb]
    for name, mine, r, s in zip(
        ["out", "grad_input", "grad_weight", "grad_bias"], ours, ref, scale, strict=True
    ):
        if r is None:
            assert mine is None, f"{what}: {name} should be None"
            continue
        _close(mine, r, s, f"{what} {name}")
    # the NumPy kernels on the same arrays, at the same bound
    out_np, saved_np = numpy_conv.conv2d_forward(x, weight, bias, stride, pads, dilation, 1)
    for name, mine, theirs, s in zip(
        ["out", "grad_input", "grad_weight"],
        ours[:3],
        [out_np, *numpy_conv.conv2d_backward(g, saved_np, True, True, False)[:2]],
        scale[:3],
        strict=True,
    ):
        _close(mine, theirs.astype(np.float64), 2 * s, f"{what} {name} vs numpy")


def test_library_loaded():
    assert load_error() is None
    assert isa() in ("avx512", "avx2+fma", "avx", "neon", "sse2", "generic")
    info = build_info()
    assert info["isa"] == isa() and info["vector_floats"] in (4, 8, 16)


@pytest.mark.parametrize("seed", range(32))
def test_random_conv2d_matches_torch_and_numpy(seed):
    x, weight, bias, stride, pads, dilation = _config(seed)
    what = f"seed {seed}: x{x.shape} w{weight.shape} s{stride} p{pads} d{dilation}"
    _run_and_compare(x, weight, bias, stride, pads, dilation, what)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pad",
    [
        ((3, 16, 32, 32), (16, 16, 3, 3), 1, 1),  # full register tiles plus a tail
        ((2, 3, 35, 35), (8, 3, 11, 11), 4, 2),  # AlexNet-like first layer
        ((5, 16, 16, 16), (32, 16, 1, 1), 2, 0),  # 1x1 stride-2 shortcut: pixels no tap reaches
        ((1, 6, 14, 14), (16, 6, 5, 5), 1, 0),  # LeNet's conv2 at batch 1
        ((3, 64, 8, 8), (64, 64, 3, 3), 1, 1),  # 64 channels: output-channel-vector tiles
        ((2, 5, 13, 11), (128, 5, 3, 2), 2, 1),  # 128 outputs at stride 2, odd sizes
        ((2, 64, 9, 7), (3, 64, 5, 5), 1, 2),  # 64 inputs: the input gradient's vector tiles
        ((3, 7, 10, 9), (32, 7, 3, 3), 1, 1),  # 32 outputs: weight gradient, 2 channel vectors
        ((2, 4, 12, 40), (32, 4, 9, 9), 1, 0),  # wide wrap: one-vector forward tiles, 2 per row
    ],
)
def test_layer_shapes(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(sum(x_shape))
    x = rng.standard_normal(x_shape).astype(np.float32)
    weight = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    pads = ((pad, pad), (pad, pad))
    _run_and_compare(x, weight, bias, (stride, stride), pads, (1, 1), f"layer x{x_shape} w{w_shape}")


def test_threads_give_the_same_result():
    """Chunks on two threads (weight-gradient partial sums added) match one thread closely."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 16, 32, 32)).astype(np.float32)
    weight = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    before = get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            set_num_threads(threads)
            out, saved = native_conv.conv2d_forward(x, weight, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
            results.append((out, *native_conv.conv2d_backward(out, saved, True, True, False)[:2]))
    finally:
        set_num_threads(before)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one.shape, two.shape)
        np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("seed", range(8))
def test_conv_transpose2d_matches_torch(seed):
    rng = np.random.default_rng(100 + seed)
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    oph, opw = int(rng.integers(0, sh)), int(rng.integers(0, sw))
    n, c_in, c_out = int(rng.choice([1, 3])), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    x = rng.standard_normal((n, c_in, int(rng.integers(2, 9)), int(rng.integers(2, 9)))).astype(np.float32)
    weight = rng.standard_normal((c_in, c_out, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    args = ((sh, sw), ((ph, ph), (pw, pw)), (oph, opw), (1, 1), 1)
    out, saved = native_conv.conv_transpose2d_forward(x, weight, bias, *args)
    g = rng.standard_normal(out.shape).astype(np.float32)
    grads = native_conv.conv_transpose2d_backward(g, saved, True, True, True)

    def convt(x_, w_, b_):
        return F.conv_transpose2d(x_, w_, b_, (sh, sw), (ph, pw), (oph, opw))

    ref = _torch_grads(convt, [x, weight, bias], g)
    scale = _torch_grads(convt, [np.abs(x), np.abs(weight), np.abs(bias)], np.abs(g))
    for name, mine, r, s in zip(["out", "gx", "gw", "gb"], [out, *grads], ref, scale, strict=True):
        _close(mine, r, s, f"transpose seed {seed} {name}")


def test_uncovered_configurations_raise_unsupported():
    x = np.zeros((1, 4, 5, 5), dtype=np.float32)
    w = np.zeros((4, 2, 3, 3), dtype=np.float32)
    with pytest.raises(Unsupported):
        native_conv.conv2d_forward(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 2)
    with pytest.raises(Unsupported):
        native_conv.conv2d_forward(
            x.astype(np.float64), np.zeros((4, 4, 3, 3)), None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1
        )


@pytest.mark.parametrize("w_shape, stride", [((64, 32, 3, 3), 1), ((32, 16, 3, 3), 2), ((16, 6, 5, 5), 1)])
def test_forward_in_thread_chunks_equals_one_call(w_shape, stride):
    """Chunks on two threads share one packed copy of the weights: the same output, bit for bit."""
    from convscope.kernels.native import conv as K
    from convscope.kernels.parallel import get_num_threads, set_num_threads

    rng = np.random.default_rng(w_shape[0])
    x = rng.standard_normal((64, w_shape[1], 16, 16)).astype(np.float32)
    weight = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    args = ((stride, stride), ((1, 1), (1, 1)), (1, 1), 1)
    previous = get_num_threads()
    try:
        set_num_threads(1)
        one = K.conv2d_forward(x, weight, bias, *args)[0]
        set_num_threads(2)
        chunked = K.conv2d_forward(x, weight, bias, *args)[0]
        assert K._plan(64, 2.0 * weight.size * one.shape[2] * one.shape[3] * 64)[0] < 64  # really chunked
    finally:
        set_num_threads(previous)
    np.testing.assert_array_equal(chunked, one)
