"""The backend switch, the dispatcher's fallback rules, the reference backend (reduced parity set,
float64 gradchecks), the randomized cross-check between backends and the same errors on each.

The full parity suite runs under every backend through the ``backend`` fixture (conftest.py):
the reference sweeps are in the slow tier, so this file keeps a reduced reference set in the
default tier.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convscope as cs
import convscope.nn.functional as F
from cli_run import last_json, run_cli
from convscope import backends, nn
from convscope.kernels import dispatch
from convscope.kernels.reference import conv as ref_conv
from parity import assert_close, assert_gradcheck, assert_parity

NATIVE_BUILT = dispatch.native_error() is None


# ---------------------------------------------------------------------------------- the switch


def test_available_current_and_use_as_context_manager():
    names = backends.available()
    assert {"numpy", "reference"} <= set(names)
    assert ("native" in names) == NATIVE_BUILT
    before = backends.current()
    assert before == ("native" if NATIVE_BUILT else "numpy") or os.environ.get("CONVSCOPE_BACKEND")
    with backends.use("reference") as chosen:
        assert backends.current() == "reference" and chosen.name == "reference"
        with backends.use("numpy"):
            assert backends.current() == "numpy"
        assert backends.current() == "reference"
    assert backends.current() == before


def test_use_without_with_sets_the_backend():
    before = backends.current()
    try:
        backends.use("reference")
        assert backends.current() == "reference"
    finally:
        backends.use(before)
    assert backends.current() == before


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'; expected one of native, numpy, reference"):
        backends.use("cuda")


@pytest.mark.skipif(NATIVE_BUILT, reason="the native backend is built here")
def test_native_where_not_built_is_an_error_with_the_reason():
    reason = dispatch.native_error()
    assert reason
    with pytest.raises(ValueError, match="the native backend is not available") as info:
        backends.use("native")
    assert reason in str(info.value)
    report = backends.info()
    assert report["native"] == {"available": False, "reason": reason}


def _python(code: str, env_value: str | None):
    env = dict(os.environ)
    env.pop("CONVSCOPE_BACKEND", None)
    if env_value is not None:
        env["CONVSCOPE_BACKEND"] = env_value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_environment_variable_sets_the_default():
    code = "import convscope; print(convscope.backends.current())"
    assert _python(code, "reference").stdout.strip() == "reference"
    assert _python(code, None).stdout.strip() == ("native" if NATIVE_BUILT else "numpy")
    bad = _python(code, "fortran")
    assert bad.returncode != 0 and "CONVSCOPE_BACKEND=fortran: unknown backend 'fortran'" in bad.stderr


def test_import_does_not_change_malloc_settings():
    code = "import convscope, convscope.nn; from convscope.kernels import memory; print(memory.is_enabled())"
    assert _python(code, None).stdout.strip() == "False"


def test_info_command_text_and_json(capsys):
    code, out, err = run_cli(["info", "--json"], capsys)
    assert code == 0
    report = last_json(out)
    assert report["backend"] == backends.current()
    assert report["threads"] == cs.get_num_threads() and report["available"] == backends.available()
    # --json: stdout holds the JSON object only, the text goes to stderr
    assert err.startswith(f"backend: {backends.current()}\n")
    assert ("native: built" in err) == NATIVE_BUILT


@pytest.mark.skipif(NATIVE_BUILT, reason="the native backend is built here")
def test_info_command_reports_an_unavailable_requested_backend():
    result = subprocess.run(
        [sys.executable, "-m", "convscope.cli.main", "info"],
        capture_output=True,
        text=True,
        env=dict(os.environ, CONVSCOPE_BACKEND="native"),
        timeout=120,
    )
    assert result.returncode == 1
    assert "error: CONVSCOPE_BACKEND=native: the native backend is not available" in result.stdout


# ---------------------------------------------------------------------------- the dispatcher


@pytest.fixture
def fake_reference(monkeypatch):
    """Replace reference functions: fake_reference(family, name, fn)."""

    def install(family, name, fn):
        monkeypatch.setitem(dispatch._FUNCS, ("reference", family, name), fn)

    return install


def test_unsupported_falls_back_to_numpy_and_backward_follows(fake_reference):
    calls = []

    def refuse(*args):
        calls.append("forward")
        raise dispatch.Unsupported("not this configuration")

    def must_not_run(*args):
        calls.append("backward")
        raise AssertionError("the reference backward ran on a NumPy forward's context")

    fake_reference("conv", "conv2d_forward", refuse)
    fake_reference("conv", "conv2d_backward", must_not_run)
    rng = np.random.default_rng(0)
    x = cs.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w = cs.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    with backends.use("reference"):
        out = F.conv2d(x, w, padding=1)
        assert out.grad_fn.backend == "numpy"
        out.sum().backward()
    assert calls == ["forward"]
    expected = TF.conv2d(torch.tensor(x.numpy()), torch.tensor(w.numpy()), padding=1)
    assert_close(out.numpy(), expected.numpy(), np.float32, "fallback forward")


def test_backward_runs_on_the_backend_that_ran_the_forward(fake_reference):
    seen = []
    real_forward, real_backward = ref_conv.conv2d_forward, ref_conv.conv2d_backward

    def forward(*args):
        seen.append("forward")
        return real_forward(*args)

    def backward(*args):
        seen.append("backward")
        return real_backward(*args)

    fake_reference("conv", "conv2d_forward", forward)
    fake_reference("conv", "conv2d_backward", backward)
    x = cs.randn(1, 2, 5, 5, requires_grad=True)
    w = cs.randn(3, 2, 3, 3, requires_grad=True)
    with backends.use("reference"):
        out = F.conv2d(x, w)
    with backends.use("numpy"):  # switching before backward does not move the backward
        out.sum().backward()
    assert seen == ["forward", "backward"]


def test_refusing_a_backward_after_its_forward_is_an_error(fake_reference):
    def refuse(*args):
        raise dispatch.Unsupported("no")

    fake_reference("pool", "max_pool2d_backward", refuse)
    x = cs.randn(1, 1, 4, 4, requires_grad=True)
    with backends.use("reference"):
        out = F.max_pool2d(x, 2)
        with pytest.raises(RuntimeError, match="refused its backward"):
            out.sum().backward()


def test_functions_a_backend_lacks_run_on_numpy():
    assert dispatch.backend_function("reference", "elementwise", "relu_forward") is None
    assert dispatch.backend_function("reference", "batchnorm", "channel_affine") is None
    assert dispatch.backend_function("reference", "conv", "conv2d_forward") is ref_conv.conv2d_forward
    with backends.use("reference"):
        x = cs.randn(2, 3, requires_grad=True)
        y = F.relu(x)
        assert y.grad_fn is not None
        np.testing.assert_array_equal(y.numpy(), np.maximum(x.numpy(), 0))


# ----------------------------------------------------------- the reference backend, reduced set

REFERENCE_CONVS = [  # (x shape, weight shape, kwargs)
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=1, padding=1)),
    ((1, 3, 23, 23), (4, 3, 11, 11), dict(stride=4, padding=2)),  # AlexNet's first layer, small
    ((3, 4, 7, 9), (6, 2, 2, 3), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
    ((2, 4, 6, 6), (4, 1, 3, 3), dict(stride=2, padding=1, groups=4)),  # depthwise
]


@pytest.mark.parametrize("case", range(len(REFERENCE_CONVS)))
def test_reference_conv2d_matches_torch(case):
    xs, ws, kw = REFERENCE_CONVS[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    with backends.use("reference"):
        assert_parity(
            lambda x, w, b: F.conv2d(x, w, b, **kw),
            lambda x, w, b: TF.conv2d(x, w, b, **kw),
            [x, w, b],
            multilinear=True,
        )


def test_reference_conv1d_and_transpose_match_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 17)).astype(np.float32)
    w = rng.standard_normal((5, 4, 4)).astype(np.float32)
    xt = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    with backends.use("reference"):
        assert_parity(
            lambda x, w: F.conv1d(x, w, stride=2, padding=1),
            lambda x, w: TF.conv1d(x, w, stride=2, padding=1),
            [x, w],
            multilinear=True,
        )
        assert_parity(
            lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
            lambda x, w: TF.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
            [xt, wt],
            multilinear=True,
        )


POOLS = [
    ("max", lambda f, x: f.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("avg", lambda f, x: f.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    ("adaptive avg", lambda f, x: f.adaptive_avg_pool2d(x, (3, 2))),
    ("adaptive max", lambda f, x: f.adaptive_max_pool2d(x, (4, 3))),
]


@pytest.mark.parametrize("name,pool", POOLS, ids=[p[0] for p in POOLS])
def test_reference_pooling_matches_torch(name, pool):
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 7)).astype(np.float32)
    with backends.use("reference"):
        assert_parity(lambda x: pool(F, x), lambda x: pool(TF, x), [x])


def test_reference_batch_norm_layer_matches_torch():
    torch.manual_seed(0)
    theirs = torch.nn.BatchNorm2d(3)
    ours = nn.BatchNorm2d(3)
    x = (np.random.default_rng(3).standard_normal((4, 3, 5, 5)) * 3 + 10).astype(np.float32)
    with backends.use("reference"):
        assert_parity(lambda x: ours(x), lambda x: theirs(x), [x])
    assert_close(ours.running_mean.numpy(), theirs.running_mean.numpy(), np.float32, "running mean")
    assert_close(ours.running_var.numpy(), theirs.running_var.numpy(), np.float32, "running var")


GRADCHECKS = [  # (name, op, input shapes)
    (
        "conv2d",
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=(1, 2), dilation=(2, 1)),
        [(2, 2, 6, 7), (3, 2, 3, 2), (3,)],
    ),
    ("conv2d groups", lambda x, w: F.conv2d(x, w, padding=1, groups=2), [(1, 4, 5, 5), (4, 2, 3, 3)]),
    ("conv1d", lambda x, w: F.conv1d(x, w, stride=2, padding=2), [(2, 3, 9), (2, 3, 4)]),
    (
        "conv_transpose2d",
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
        [(2, 3, 4, 3), (3, 2, 3, 3), (2,)],
    ),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2, 1, 1), [(2, 2, 5, 4)]),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), [(2, 2, 6, 5)]),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(2, 2, 5, 7)]),
    ("adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d(x, (2, 2)), [(1, 2, 5, 4)]),
    (
        "batch_norm",
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        [(4, 3, 3, 2), (3,), (3,)],
    ),
]


@pytest.mark.parametrize("name,op,shapes", GRADCHECKS, ids=[g[0] for g in GRADCHECKS])
def test_reference_float64_gradcheck(name, op, shapes):
    rng = np.random.default_rng(len(name))
    arrays = [rng.standard_normal(s) for s in shapes]
    with backends.use("reference"):
        assert_gradcheck(op, arrays)


def test_reference_im2col_matches_the_lecture_loops():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    args = ((2, 1), ((1, 0), (2, 1)), (1, 2), 2)
    out, saved = ref_conv.conv2d_forward(x, w, b, *args)
    np.testing.assert_allclose(out, ref_conv.conv2d_loops(x, w, b, *args), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    for mine, loop in zip(
        ref_conv.conv2d_backward(g, saved), ref_conv.conv2d_backward_loops(x, w, g, *args), strict=True
    ):
        np.testing.assert_allclose(mine, loop, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------- randomized cross-check of backends


def _random_conv_case(seed: int):
    """A random conv2d configuration and its inputs; batch 1 or odd, inputs often non-contiguous."""
    rng = np.random.default_rng(seed)
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    if seed % 5 == 0:
        kh = 1  # a 1-D kernel (Conv1d's shape)
    stride = tuple(int(v) for v in rng.choice([1, 1, 2, 3, 4], 2))
    dilation = tuple(int(v) for v in rng.choice([1, 1, 1, 2], 2))
    groups = int(rng.choice([1, 1, 1, 2]))
    c_in, c_out = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    padding = tuple(int(v) for v in rng.integers(0, 3, 2))
    n = int(rng.choice([1, 3, 5]))
    h = (kh - 1) * dilation[0] + 1 + int(rng.integers(0, 8))
    w = (kw - 1) * dilation[1] + 1 + int(rng.integers(0, 8))
    x = rng.standard_normal((n, c_in, h, w * 2)).astype(np.float32)
    x = x[..., ::2] if seed % 2 else np.ascontiguousarray(x[..., :w])  # a strided view half the time
    weight = rng.standard_normal((c_out, c_in // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32) if seed % 3 else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, kwargs


def _run_conv(backend: str, x, weight, bias, kwargs, g_seed: int, absolute: bool = False):
    """Output and gradients of conv2d on ``backend``; ``absolute``: the same on |x|, |w|, |b|,
    |g| (each value's sum of |terms|, the scale of its float32 round-off)."""
    if absolute:
        x, weight = np.abs(x), np.abs(weight)
        bias = None if bias is None else np.abs(bias)
    with backends.use(backend):
        xt = cs.tensor(x, requires_grad=True)
        wt = cs.tensor(weight, requires_grad=True)
        bt = None if bias is None else cs.tensor(bias, requires_grad=True)
        out = F.conv2d(xt, wt, bt, **kwargs)
        g = np.random.default_rng(g_seed).standard_normal(out.shape).astype(np.float32)
        out.backward(cs.tensor(np.abs(g) if absolute else g))
        return [out.numpy(), xt.grad.numpy(), wt.grad.numpy()] + ([] if bt is None else [bt.grad.numpy()])


def assert_backends_agree(a: str, b: str, seed: int) -> None:
    """Randomized cross-check: conv2d forward and gradients of backend ``a`` against ``b`` on one
    random configuration (shapes, strides, paddings, dilation, groups, batch 1 or odd,
    non-contiguous input), at the float32 parity tolerance. Every value is a sum of products
    and two backends add in different orders, so (as in the kernel tests) the tolerance is
    relative to the value's sum of |terms| where terms cancel (``magnitude``)."""
    x, weight, bias, kwargs = _random_conv_case(seed)
    case = f"seed {seed}: x {x.shape} w {weight.shape} {kwargs}"
    ours = _run_conv(a, x, weight, bias, kwargs, seed)
    theirs_all = _run_conv(b, x, weight, bias, kwargs, seed)
    sizes = _run_conv(b, x, weight, bias, kwargs, seed, absolute=True)
    names = ["out", "grad_input", "grad_weight", "grad_bias"][: len(ours)]
    for name, mine, theirs, size in zip(names, ours, theirs_all, sizes, strict=True):
        assert_close(mine, theirs, np.float32, f"{a} vs {b} {name} ({case})", magnitude=size)


@pytest.mark.parametrize("seed", range(8))
def test_reference_and_numpy_agree_on_random_convolutions(seed):
    assert_backends_agree("reference", "numpy", seed)


@pytest.mark.native
@pytest.mark.parametrize("seed", range(40))
def test_native_and_numpy_agree_on_random_convolutions(seed):
    assert_backends_agree("native", "numpy", seed)


# ------------------------------------------------------------- the same errors on every backend

BAD_CALLS = [
    lambda: F.conv2d(cs.randn(1, 3, 4, 4), cs.randn(2, 3, 5, 5)),
    lambda: F.conv2d(cs.randn(1, 3, 8, 8), cs.randn(2, 4, 3, 3)),
    lambda: F.conv2d(cs.randn(1, 3, 8, 8), cs.randn(2, 3, 3, 3), stride=0),
    lambda: F.max_pool2d(cs.randn(1, 1, 2, 2), 3),
    lambda: F.avg_pool2d(cs.randn(1, 1, 6, 6), 2, padding=2),
    lambda: F.conv_transpose2d(cs.randn(1, 2, 3, 3), cs.randn(3, 2, 3, 3)),
    lambda: F.batch_norm(cs.randn(2, 3, 4, 4), None, None, cs.ones(4), None, training=True),
]


def _error(call):
    try:
        call()
    except (ValueError, TypeError) as e:
        return type(e), str(e)
    raise AssertionError("no error raised")


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_input_gives_the_same_error_on_every_backend(i):
    errors = {}
    for name in backends.available():
        with backends.use(name):
            errors[name] = _error(BAD_CALLS[i])
    assert len(set(errors.values())) == 1, errors


# ----------------------------------------------------------------- training on the reference


@pytest.mark.slow
def test_reference_backend_trains_the_simple_cnn_on_digits(capsys, tmp_path):
    """convscope train (the simple CNN on digits, seeded) under the reference backend learns, and
    ends where the NumPy backend ends from the same seed."""
    results = {}
    for name in ("reference", "numpy"):
        args = ["train", "--epochs", "3", "--no-progress", "--out", str(tmp_path / name), "--json"]
        with backends.use(name):
            code, out, _ = run_cli(args, capsys)
        assert code == 0
        results[name] = last_json(out)["test_accuracy"]
    assert results["reference"] >= 0.9, results
    # the same arithmetic up to float32 rounding: the same accuracy to within a few of 360 images
    assert abs(results["reference"] - results["numpy"]) <= 0.02, results
