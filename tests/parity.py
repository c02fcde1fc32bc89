"""Test helper: run the same computation in convscope and PyTorch and compare everything.

``assert_parity(ours, theirs, arrays)`` feeds the same NumPy arrays to both
functions, compares the outputs, back-propagates the same random upstream
gradient and compares the gradient of every floating-point input.
"""

from __future__ import annotations

import numpy as np
import torch

import convscope as cs

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _tol(dtype, scale=1.0):
    t = TOL[np.dtype(dtype).type]
    return dict(rtol=t["rtol"], atol=t["atol"] * scale)


def assert_kernel_close(ours, theirs, dtype, what):
    """A kernel's array against a reference (array or torch tensor) at the tolerances of
    ``dtype``; ``ours`` must have exactly that dtype and the reference's shape (NaNs equal)."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    assert ours.dtype == np.dtype(dtype), f"{what}: dtype {ours.dtype} != {np.dtype(dtype)}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, equal_nan=True, **TOL[np.dtype(dtype).type])


def assert_close(ours, theirs, dtype, what, scale=1.0, magnitude=None):
    """Elementwise |ours - theirs| <= atol + rtol * M with M = |theirs| (or the term magnitude).

    ``magnitude`` is sum |terms| of each value (for sums of products: the same op on
    absolute values). Where terms cancel, float32 round-off is relative to that sum, not to
    the small result; any two summation orders (PyTorch's and ours) differ by that much.
    """
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} != torch {theirs.dtype}"
    tol = _tol(dtype, scale)
    if magnitude is None:
        np.testing.assert_allclose(ours, theirs, err_msg=what, **tol)
        return
    bound = tol["atol"] + tol["rtol"] * np.maximum(np.abs(theirs), np.asarray(magnitude))
    err = np.abs(ours.astype(np.float64) - theirs)
    bad = np.flatnonzero(~(err <= bound))
    assert bad.size == 0, (
        f"{what}: {bad.size} of {err.size} values off; worst at flat index "
        f"{bad[np.argmax((err / bound).flat[bad])]}: error/bound "
        f"{(err / bound).max():.3g}"
    )


def _magnitudes(theirs, arrays, upstream):
    """Output and input-gradient magnitudes: the op run on |inputs| with |upstream| (sums of products)."""
    th = [
        None
        if a is None
        else torch.tensor(np.abs(a) if a.dtype.kind == "f" else a, requires_grad=a.dtype.kind == "f")
        for a in arrays
    ]
    out = theirs(*th)
    out = out[0] if isinstance(out, tuple) else out
    out.backward(torch.tensor(np.abs(upstream)))
    return out.detach().numpy(), [None if t is None or t.grad is None else t.grad.numpy() for t in th]


def assert_parity(ours, theirs, arrays, grad=True, seed=0, scale=1.0, extra_grads=None, multilinear=False):
    """Compare forward outputs and input gradients of ``ours`` and ``theirs``.

    Args:
        ours / theirs: callables taking the inputs (convscope Tensors / torch tensors) and
            returning one tensor (or a tuple whose first element is differentiable).
        arrays: NumPy arrays (floats require grad, ints do not) or None.
        scale: multiplies the absolute tolerance for values that are sums of many terms
            of size ~1 (documented at each use).
        extra_grads: optional callables (module_ours, module_theirs) -> list of (name, ours, theirs)
            arrays evaluated after backward (parameters' gradients).
        multilinear: the op is a sum of products of its inputs (conv, linear, pooling, padding):
            compare against the term magnitudes (see assert_close), computed by running
            PyTorch on absolute values.
    """
    dtype = next(a.dtype for a in arrays if a is not None and a.dtype.kind == "f")
    cs_in = [
        None if a is None else cs.tensor(a, dtype=a.dtype, requires_grad=a.dtype.kind == "f" and grad)
        for a in arrays
    ]
    th_in = [
        None if a is None else torch.tensor(a, requires_grad=a.dtype.kind == "f" and grad) for a in arrays
    ]
    out_c = ours(*cs_in)
    out_t = theirs(*th_in)
    if isinstance(out_c, tuple):
        for i, (c, t) in enumerate(zip(out_c[1:], out_t[1:], strict=True)):
            assert_close(c.numpy(), t.detach().numpy(), dtype, f"extra output {i}")
        out_c, out_t = out_c[0], out_t[0]
    rng = np.random.default_rng(seed + 1)
    upstream = rng.standard_normal(out_c.shape).astype(dtype)
    mag_out, mag_grads = _magnitudes(theirs, arrays, upstream) if multilinear else (None, None)
    assert_close(out_c.numpy(), out_t.detach().numpy(), dtype, "forward", scale, mag_out)
    if not grad:
        return out_c
    out_c.backward(cs.tensor(upstream, dtype=dtype))
    out_t.backward(torch.tensor(upstream))
    for i, (c, t) in enumerate(zip(cs_in, th_in, strict=True)):
        if c is None or not c.requires_grad:
            continue
        assert t.grad is not None, f"torch gave no grad for input {i}"
        assert c.grad is not None, f"convscope gave no grad for input {i}"
        assert_close(
            c.grad.numpy(),
            t.grad.numpy(),
            dtype,
            f"grad of input {i}",
            scale,
            None if mag_grads is None else mag_grads[i],
        )
    if extra_grads:
        for name, gc, gt in extra_grads():
            assert_close(gc, gt, dtype, f"grad of {name}", scale)
    return out_c


def numerical_grad(fn, arrays, index, eps=1e-6):
    """Central-difference gradient of sum(fn(*arrays) * weights) w.r.t. arrays[index] in float64."""
    base = [None if a is None else a.copy() for a in arrays]
    x = base[index]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index", "zerosize_ok"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        plus = fn(*base)
        x[i] = old - eps
        minus = fn(*base)
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def assert_gradcheck(op, arrays, seed=0, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Float64 central differences against convscope's analytic gradient, independent of PyTorch.

    ``op`` maps convscope Tensors to a Tensor; the scalar checked is sum(op(x) * w) for a
    fixed random w, so every output element's gradient path is exercised.
    """
    arrays = [
        None if a is None else np.asarray(a, dtype=np.float64) if a.dtype.kind == "f" else a for a in arrays
    ]
    rng = np.random.default_rng(seed + 7)
    probe = op(*[None if a is None else cs.tensor(a, dtype=a.dtype) for a in arrays])
    probe = probe[0] if isinstance(probe, tuple) else probe
    weights = rng.standard_normal(probe.shape)

    def scalar(*arrs):
        with cs.no_grad():
            out = op(*[None if a is None else cs.tensor(a, dtype=a.dtype) for a in arrs])
        out = out[0] if isinstance(out, tuple) else out
        return float((out.numpy() * weights).sum())

    tensors = [
        None if a is None else cs.tensor(a, dtype=a.dtype, requires_grad=a.dtype.kind == "f") for a in arrays
    ]
    out = op(*tensors)
    out = out[0] if isinstance(out, tuple) else out
    out.backward(cs.tensor(weights, dtype=np.float64))
    for i, (a, t) in enumerate(zip(arrays, tensors, strict=True)):
        if a is None or a.dtype.kind != "f":
            continue
        expected = numerical_grad(scalar, arrays, i, eps)
        np.testing.assert_allclose(
            t.grad.numpy(), expected, rtol=rtol, atol=atol, err_msg=f"gradcheck of input {i}"
        )
