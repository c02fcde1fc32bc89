"""Convolution kernels: parity with PyTorch (on every backend), the reference loops, chunking, windows.

Configs are drawn from seeded generators: odd/even/rectangular kernels,
stride 1-3, padding 0-3 (asymmetric for conv2d: PyTorch sees ``F.pad`` first),
dilation 1-3, groups (including depthwise), batch 1 and more, with and
without bias, float32 and float64.

Tolerance. The oracle is PyTorch in float64 on the same (float32-valued)
inputs. Every output and gradient element is a sum of products; we bound its
error relative to ``S`` = the same sum over absolute values (computed by
running PyTorch on |x|, |w|, |g|), so ``|ours - ref| <= atol + rtol * S`` with
float32 rtol=1e-5, atol=1e-6 and float64 rtol=1e-12, atol=1e-14. ``S >= |ref|``,
and using it instead of ``|ref|`` is what makes the test fair where terms
cancel (a float32 sum of n terms is off by up to ~n*6e-8*S, whatever |ref| is);
a wrong or missing tap changes the result by a whole term, ~S/n >> 1e-5*S.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.kernels import conv as conv_mod
from convscope.kernels import parallel as parallel_mod
from convscope.kernels import window as window_mod
from convscope.kernels.conv import (
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from convscope.kernels.geometry import ConvGeometry
from convscope.kernels.reference import conv as reference_conv
from convscope.kernels.reference.conv import conv2d_backward_loops as loop_conv2d_grads
from convscope.kernels.reference.conv import conv2d_loops as loop_conv2d
from convscope.kernels.reference.conv import conv_transpose2d_loops as loop_conv_transpose2d
from convscope.kernels.window import window_view
from kernel_calls import conv2d as backend_conv2d
from kernel_calls import conv_transpose2d as backend_conv_transpose2d

TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)}
DTYPES = [np.float32, np.float64]


def _close(ours, ref, scale, dtype, what):
    rtol, atol = TOL[np.dtype(dtype).type]
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    assert ours.dtype == np.dtype(dtype), f"{what}: dtype {ours.dtype} != {np.dtype(dtype)}"
    err = np.abs(ours.astype(np.float64) - ref)
    bound = atol + rtol * scale
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), f"{what}: err {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}"


def _torch_run(fn, arrays, g):
    """Forward + backward in float64; returns output and the grads of every array."""
    ts = [None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(g, dtype=torch.float64))
    return [out.detach().numpy()] + [None if t is None else t.grad.numpy() for t in ts]


def _check(ours_fn, torch_fn, arrays, dtype, seed, what):
    """Compare ours (out, gx, gw, gb) with PyTorch float64 and the |.|-sum scales."""
    out, saved, backward = ours_fn(*arrays)
    g = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    grads = backward(g, saved)
    ref = _torch_run(torch_fn, arrays, g)
    absolute = [None if a is None else np.abs(a) for a in arrays]
    scale = _torch_run(torch_fn, absolute, np.abs(g))
    names = ["out", "grad_input", "grad_weight", "grad_bias"]
    # without a bias array torch gives no bias gradient to compare: zip stops at what it gave
    for name, mine, r, s in zip(names, [out, *grads], ref, scale, strict=False):
        if r is None:
            assert mine is None, f"{what}: {name} should be None"
            continue
        _close(mine, r, s, dtype, f"{what} {name}")


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _conv_config(seed):
    rng = np.random.default_rng(seed)
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    dh, dw = (int(v) for v in rng.integers(1, 4, 2))
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in = groups * int(rng.integers(1, 4))
    c_out = groups * int(rng.integers(1, 4))
    if seed % 7 == 0:  # depthwise
        groups, c_in = c_in, c_in
        c_out = c_in * int(rng.integers(1, 3))
    pads = tuple(tuple(int(v) for v in rng.integers(0, 4, 2)) for _ in range(2))
    h = dh * (kh - 1) + 1 + int(rng.integers(0, 7)) - pads[0][0] - pads[0][1]
    w = dw * (kw - 1) + 1 + int(rng.integers(0, 7)) - pads[1][0] - pads[1][1]
    n = int(rng.choice([1, 2, 3]))
    return dict(
        n=n,
        c_in=c_in,
        c_out=c_out,
        h=max(h, 1),
        w=max(w, 1),
        k=(kh, kw),
        stride=(sh, sw),
        pads=pads,
        dilation=(dh, dw),
        groups=groups,
        bias=bool(rng.integers(0, 2)),
    )


def _fits(cfg):
    (kh, kw), (dh, dw), ((pt, pb), (pl, pr)) = cfg["k"], cfg["dilation"], cfg["pads"]
    return cfg["h"] + pt + pb >= dh * (kh - 1) + 1 and cfg["w"] + pl + pr >= dw * (kw - 1) + 1


def _conv_arrays(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, (cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]), dtype)
    w = _rand(rng, (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["k"]), dtype)
    b = _rand(rng, (cfg["c_out"],), dtype) if cfg["bias"] else None
    return x, w, b


def _ours_conv(cfg):
    """Forward and backward on the active backend (the `backend` fixture picks it)."""

    def run(x, w, b):
        return backend_conv2d(x, w, b, cfg["stride"], cfg["pads"], cfg["dilation"], cfg["groups"])

    return run


def _torch_conv(cfg):
    (pt, pb), (pl, pr) = cfg["pads"]
    return lambda x, w, b: F.conv2d(
        F.pad(x, (pl, pr, pt, pb)), w, b, cfg["stride"], 0, cfg["dilation"], cfg["groups"]
    )


CONV_SEEDS = [s for s in range(120) if _fits(_conv_config(s))][:70]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", CONV_SEEDS)
def test_conv2d_parity_random(seed, dtype, backend):
    cfg = _conv_config(seed)
    _check(_ours_conv(cfg), _torch_conv(cfg), _conv_arrays(cfg, dtype, seed), dtype, seed, str(cfg))


NAMED = {  # the layers the benchmarks time, at batch 2
    "lenet.conv1": dict(n=2, c_in=1, c_out=6, h=28, w=28, k=(5, 5), stride=(1, 1), pads=((2, 2), (2, 2))),
    "lenet.conv2": dict(n=2, c_in=6, c_out=16, h=14, w=14, k=(5, 5), stride=(1, 1), pads=((0, 0), (0, 0))),
    "r20.s1": dict(n=2, c_in=16, c_out=16, h=32, w=32, k=(3, 3), stride=(1, 1), pads=((1, 1), (1, 1))),
    "r20.down": dict(n=2, c_in=16, c_out=32, h=32, w=32, k=(3, 3), stride=(2, 2), pads=((1, 1), (1, 1))),
    "r20.shortcut": dict(n=2, c_in=32, c_out=64, h=16, w=16, k=(1, 1), stride=(2, 2), pads=((0, 0), (0, 0))),
    "1x1.padded.s3": dict(n=2, c_in=3, c_out=4, h=7, w=8, k=(1, 1), stride=(3, 2), pads=((1, 2), (0, 1))),
    "same.even.k4": dict(n=1, c_in=3, c_out=2, h=9, w=6, k=(4, 2), stride=(1, 1), pads=((1, 2), (0, 1))),
    "depthwise.s2.d2": dict(
        n=3,
        c_in=6,
        c_out=6,
        h=11,
        w=9,
        k=(3, 3),
        stride=(2, 2),
        pads=((2, 2), (2, 2)),
        dilation=(2, 2),
        groups=6,
    ),
    "stride>kernel": dict(n=2, c_in=2, c_out=3, h=10, w=11, k=(2, 2), stride=(3, 3), pads=((0, 1), (1, 0))),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(NAMED))
def test_conv2d_parity_named(name, dtype, backend):
    cfg = dict(dilation=(1, 1), groups=1, bias=True) | NAMED[name]
    _check(_ours_conv(cfg), _torch_conv(cfg), _conv_arrays(cfg, dtype, 3), dtype, 3, name)


LAYOUT_CASES = [
    "lenet.conv1",
    "lenet.conv2",
    "r20.s1",
    "r20.down",
    "r20.shortcut",
    "same.even.k4",
    "depthwise.s2.d2",
    "stride>kernel",
] + [f"seed{s}" for s in CONV_SEEDS[:10]]


def _force_layout(monkeypatch, layout):
    """rows: row columns wherever stride 1 allows; flat / exact: tap columns of that kind."""
    monkeypatch.setattr(conv_mod, "_prefer_rows", lambda *a: layout == "rows")
    if layout == "exact":
        monkeypatch.setattr(conv_mod, "_use_flat", lambda stride: False)


@pytest.mark.parametrize("layout", ["rows", "flat", "exact"])
@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_every_column_layout_matches_torch(case, layout, monkeypatch):
    """Forward, gradients and the transposed conv with each column layout forced.

    The dispatcher picks per layer; forcing each choice checks every implementation
    (dx of strided convs is made of stride-1 correlations, so all layouts reach them).
    """
    cfg = (
        _conv_config(int(case[4:]))
        if case.startswith("seed")
        else (dict(dilation=(1, 1), groups=1, bias=True) | NAMED[case])
    )
    _force_layout(monkeypatch, layout)
    _check(_ours_conv(cfg), _torch_conv(cfg), _conv_arrays(cfg, np.float64, 5), np.float64, 5, case)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, cfg["c_out"], 4, 5))
    w = rng.standard_normal((cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["k"]))

    def ours(x, w):
        out, saved = conv_transpose2d_forward(
            x, w, None, cfg["stride"], (0, 0), (0, 0), cfg["dilation"], cfg["groups"]
        )
        return out, saved, lambda g, s: conv_transpose2d_backward(g, s)[:2]

    def theirs(x, w):
        return F.conv_transpose2d(x, w, None, cfg["stride"], 0, 0, cfg["groups"], cfg["dilation"])

    _check(ours, theirs, (x, w), np.float64, 6, case + " transposed")


def _convt_config(seed):
    rng = np.random.default_rng(1000 + seed)
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    dh, dw = (int(v) for v in rng.integers(1, 4, 2))
    groups = int(rng.choice([1, 2]))
    pad = tuple(int(v) for v in rng.integers(0, 3, 2))
    op = tuple(int(rng.integers(0, max(s, d))) for s, d in ((sh, dh), (sw, dw)))
    return dict(
        n=int(rng.choice([1, 2])),
        c_in=groups * int(rng.integers(1, 4)),
        c_out=groups * int(rng.integers(1, 4)),
        h=int(rng.integers(1, 6)),
        w=int(rng.integers(1, 6)),
        k=(kh, kw),
        stride=(sh, sw),
        padding=pad,
        output_padding=op,
        dilation=(dh, dw),
        groups=groups,
        bias=bool(rng.integers(0, 2)),
    )


def _convt_out(cfg):
    return [
        (n - 1) * s - 2 * p + d * (k - 1) + o + 1
        for n, s, p, d, k, o in zip(
            (cfg["h"], cfg["w"]),
            cfg["stride"],
            cfg["padding"],
            cfg["dilation"],
            cfg["k"],
            cfg["output_padding"],
            strict=True,
        )
    ]


CONVT_SEEDS = [s for s in range(80) if min(_convt_out(_convt_config(s))) >= 1][:40]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", CONVT_SEEDS)
def test_conv_transpose2d_parity_random(seed, dtype, backend):
    cfg = _convt_config(seed)
    rng = np.random.default_rng(seed)
    x = _rand(rng, (cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]), dtype)
    w = _rand(rng, (cfg["c_in"], cfg["c_out"] // cfg["groups"], *cfg["k"]), dtype)
    b = _rand(rng, (cfg["c_out"],), dtype) if cfg["bias"] else None
    args = (cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["dilation"], cfg["groups"])

    def ours(x, w, b):
        return backend_conv_transpose2d(x, w, b, *args)

    def theirs(x, w, b):
        return F.conv_transpose2d(
            x, w, b, cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["groups"], cfg["dilation"]
        )

    _check(ours, theirs, (x, w, b), dtype, seed, str(cfg))


# ---------------------------------------------------------------------------
# The slow, obviously correct loops of the reference backend (float64)
# ---------------------------------------------------------------------------


LOOP_SEEDS = [s for s in CONV_SEEDS if _conv_config(s)["h"] * _conv_config(s)["w"] <= 40][:12]


@pytest.mark.parametrize("seed", LOOP_SEEDS)
def test_conv2d_matches_loop_reference(seed):
    cfg = _conv_config(seed)
    x, w, b = _conv_arrays(cfg, np.float64, seed)
    args = (cfg["stride"], cfg["pads"], cfg["dilation"], cfg["groups"])
    out, saved = conv2d_forward(x, w, b, *args)
    np.testing.assert_allclose(out, loop_conv2d(x, w, b, *args), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    gx, gw, gb = conv2d_backward(g, saved)
    rgx, rgw, rgb = loop_conv2d_grads(x, w, g, *args)
    np.testing.assert_allclose(gx, rgx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, rgw, rtol=1e-12, atol=1e-12)
    if b is not None:
        np.testing.assert_allclose(gb, rgb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", CONVT_SEEDS[:10])
def test_conv_transpose2d_matches_loop_reference(seed):
    cfg = _convt_config(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]))
    w = rng.standard_normal((cfg["c_in"], cfg["c_out"] // cfg["groups"], *cfg["k"]))
    b = rng.standard_normal(cfg["c_out"])
    args = (cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["dilation"], cfg["groups"])
    out, _ = conv_transpose2d_forward(x, w, b, *args)
    np.testing.assert_allclose(out, loop_conv_transpose2d(x, w, b, *args), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Chunking, flags, dtypes, inputs untouched
# ---------------------------------------------------------------------------


def _conv_and_transpose(cfg, x, w, b, g):
    """Forward + all grads of conv2d, and of the matching conv_transpose2d on g."""
    args = (cfg["stride"], cfg["pads"], cfg["dilation"], cfg["groups"])
    out, saved = conv2d_forward(x, w, b, *args)
    tb = np.arange(w.shape[1] * cfg["groups"], dtype=x.dtype)
    t_out, t_saved = conv_transpose2d_forward(g, w, tb, cfg["stride"], (1, 1), (0, 0), (1, 1), cfg["groups"])
    return (out, *conv2d_backward(g, saved), t_out, *conv_transpose2d_backward(np.ones_like(t_out), t_saved))


@pytest.fixture
def threads():
    """Set the kernels' thread count; restored to the default afterwards."""
    yield parallel_mod.set_num_threads
    parallel_mod.set_num_threads(None)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("layout", ["rows", "flat", "exact"])
@pytest.mark.parametrize("name", ["r20.s1", "r20.down", "r20.shortcut", "depthwise.s2.d2", "same.even.k4"])
def test_chunked_matches_unchunked(name, layout, n_threads, monkeypatch, threads):
    """One image per chunk (serial or in threads) gives the whole-batch result."""
    cfg = dict(dilation=(1, 1), groups=1, bias=True) | NAMED[name] | dict(n=5)
    _force_layout(monkeypatch, layout)
    x, w, b = _conv_arrays(cfg, np.float64, 7)
    out, _ = conv2d_forward(x, w, b, cfg["stride"], cfg["pads"], cfg["dilation"], cfg["groups"])
    g = np.random.default_rng(8).standard_normal(out.shape)
    for name_, value in (
        ("CACHE_BLOCK_BYTES", 2**40),
        ("COLUMN_BUDGET_BYTES", 2**40),
        ("PARALLEL_MIN_FLOPS", 1e30),
    ):
        monkeypatch.setattr(conv_mod, name_, value)
    threads(1)
    whole = _conv_and_transpose(cfg, x, w, b, g)
    monkeypatch.setattr(conv_mod, "COLUMN_BUDGET_BYTES", 1)  # one image per chunk
    monkeypatch.setattr(conv_mod, "PARALLEL_MIN_FLOPS", 0)
    threads(n_threads)
    chunked = _conv_and_transpose(cfg, x, w, b, g)
    for a, c in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-13)


def test_chunk_size_respects_budget(monkeypatch):
    monkeypatch.setattr(conv_mod, "COLUMN_BUDGET_BYTES", 10_000)
    monkeypatch.setattr(conv_mod, "CACHE_BLOCK_BYTES", 2**40)
    monkeypatch.setattr(conv_mod, "PARALLEL_MIN_FLOPS", 1e9)
    assert conv_mod._chunk(3_000, 64, 0) == (3, False)
    assert conv_mod._chunk(50_000, 64, 0) == (1, False)  # never fewer than one image
    assert conv_mod._chunk(10, 4, 0) == (4, False)
    monkeypatch.setattr(conv_mod, "CACHE_BLOCK_BYTES", 12_000)  # serial runs use half a block
    assert conv_mod._chunk(3_000, 64, 0) == (2, False)
    assert conv_mod._chunk(3_000, 64, 1e9) == (3, True)


def test_run_chunks_covers_every_image_once(threads):
    for n_threads in (1, 2, 3):
        threads(n_threads)
        for n, step in ((1, 4), (7, 2), (64, 5)):
            got = parallel_mod.run_chunks(n, step, True, lambda a, b: list(range(a, b)))
            assert sum(got, []) == list(range(n))


def test_scratch_reuse_across_layouts():
    """Consecutive calls with different geometries (and back) reuse scratch slots correctly."""
    cfgs = [NAMED["r20.s1"], NAMED["r20.down"], NAMED["same.even.k4"], NAMED["r20.s1"]]
    for i, named in enumerate(cfgs):
        cfg = dict(dilation=(1, 1), groups=1, bias=True) | named
        _check(
            _ours_conv(cfg),
            _torch_conv(cfg),
            _conv_arrays(cfg, np.float64, 20 + i),
            np.float64,
            20 + i,
            str(i),
        )
    window_mod.clear_workspace()
    cfg = dict(dilation=(1, 1), groups=1, bias=True) | cfgs[0]
    _check(_ours_conv(cfg), _torch_conv(cfg), _conv_arrays(cfg, np.float64, 30), np.float64, 30, "cleared")


@pytest.mark.parametrize("dtype", DTYPES)
def test_flags_dtypes_and_inputs_untouched(dtype):
    """need_* flags give None; outputs keep the input dtype (parity tests check it too)."""
    cfg = dict(dilation=(1, 1), groups=1, bias=True) | NAMED["r20.down"]
    x, w, b = _conv_arrays(cfg, dtype, 11)
    copies = [a.copy() for a in (x, w, b)]
    out, saved = conv2d_forward(x, w, b, cfg["stride"], cfg["pads"], (1, 1), 1)
    assert out.dtype == dtype and out.flags.c_contiguous
    g = np.ones_like(out)
    gx, gw, gb = conv2d_backward(g, saved, need_input=False, need_weight=True, need_bias=False)
    assert gx is None and gb is None and gw.dtype == dtype and gw.shape == w.shape
    gx, gw, gb = conv2d_backward(g, saved, need_input=True, need_weight=False, need_bias=True)
    assert gw is None and gx.dtype == dtype and gb.dtype == dtype and gx.shape == x.shape
    _, saved_nb = conv2d_forward(x, w, None, cfg["stride"], cfg["pads"], (1, 1), 1)
    assert conv2d_backward(g, saved_nb)[2] is None
    for a, c in zip((x, w, b), copies, strict=True):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------
# The windowing helper
# ---------------------------------------------------------------------------


def test_window_view_is_a_view_with_the_right_taps():
    x = np.arange(2 * 3 * 9 * 10, dtype=np.float64).reshape(2, 3, 9, 10)
    v = window_view(x, (3, 2), (2, 3), (2, 1))
    assert v.shape == (2, 3, 3, 2, 3, 3) and np.shares_memory(v, x)
    for idx in np.ndindex(*v.shape):
        n, c, p, q, i, j = idx
        assert v[idx] == x[n, c, i * 2 + p * 2, j * 3 + q]


@pytest.mark.parametrize("seed", range(6))
def test_reference_im2col_and_col2im_are_adjoint(seed):
    rng = np.random.default_rng(seed)
    k = tuple(int(v) for v in rng.integers(1, 4, 2))
    s, d = tuple(int(v) for v in rng.integers(1, 3, 2)), tuple(int(v) for v in rng.integers(1, 3, 2))
    pads = tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(2))
    x = rng.standard_normal((2, 3, 8, 7))
    geom = ConvGeometry.conv(x.shape[2:], k, s, pads, d)
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    cols = reference_conv.im2col(reference_conv.zero_pad(x, pads), geom)
    # columns against the loop definition
    ho = (xp.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    wo = (xp.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    c6 = cols.reshape(3, k[0], k[1], 2, ho, wo)
    for c, p, q, n, i, j in np.ndindex(*c6.shape):
        assert c6[c, p, q, n, i, j] == xp[n, c, i * s[0] + p * d[0], j * s[1] + q * d[1]]
    # <im2col(xp), y> == <xp, col2im(y)>
    y = rng.standard_normal(cols.shape)
    lhs = np.vdot(cols, y)
    rhs = np.vdot(xp, reference_conv.col2im(y, xp.shape, geom))
    assert abs(lhs - rhs) <= 1e-12 * np.abs(cols * y).sum()
