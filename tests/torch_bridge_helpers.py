"""Helpers of the PyTorch-bridge tests: run a convscope model and its torch twin side by side."""

from __future__ import annotations

import numpy as np
import torch

import convscope as cs
from convscope import nn

# whole-network comparisons: float32 round-off grows with depth; judged against the largest value
REL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_net_close(ours, theirs, what: str) -> None:
    ours = np.asarray(ours.data if isinstance(ours, cs.Tensor) else ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} != {theirs.dtype}"
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    err = float(np.abs(ours - theirs).max()) if theirs.size else 0.0
    assert err <= REL[ours.dtype] * scale, f"{what}: max |diff| {err:.3g} > {REL[ours.dtype]} * {scale:.3g}"


def assert_same_state(a: dict, b: dict, what: str) -> None:
    """Same keys in the same order and bit-identical values (torch or convscope tensors)."""
    assert list(a) == list(b), f"{what}: keys differ"
    for k in a:
        x = a[k].data if isinstance(a[k], cs.Tensor) else a[k].detach().numpy()
        y = b[k].data if isinstance(b[k], cs.Tensor) else b[k].detach().numpy()
        assert x.dtype == y.dtype and x.shape == y.shape, (
            f"{what}: {k} {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        )
        assert np.array_equal(x, y), f"{what}: {k} differs"


def dropout_off(model) -> None:
    """Dropout draws different masks in the two libraries: compare train mode with it in eval."""
    for m in model.modules():
        if type(m).__name__ == "Dropout":
            m.train(False)


def compare_forward_backward(model: nn.Module, twin: torch.nn.Module, x: np.ndarray, train: bool, what: str):
    """Outputs, input gradients and parameter gradients of both models on ``x``."""
    model.zero_grad()
    twin.zero_grad()
    model.train(train)
    twin.train(train)
    dropout_off(model)
    dropout_off(twin)
    xc = cs.tensor(x, dtype=x.dtype, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_c, out_t = model(xc), twin(xt)
    assert_net_close(out_c, out_t, f"{what} output")
    g = np.random.default_rng(1).standard_normal(out_t.shape).astype(x.dtype)
    (out_c * cs.tensor(g, dtype=g.dtype)).sum().backward()
    (out_t * torch.from_numpy(g)).sum().backward()
    assert_net_close(xc.grad, xt.grad, f"{what} input gradient")
    grads_t = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert_net_close(p.grad, grads_t[name].grad, f"{what} gradient of {name}")
