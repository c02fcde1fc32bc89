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


#: the layers at which a network's gradient jumps: where a ReLU's input crosses zero, where a
#: max-pool window's winner changes
KINKS = ("ReLU", "MaxPool2d")


def _record_kinks(model: nn.Module, calls: dict) -> list:
    """Forward hooks that append each ReLU / MaxPool2d call's input to ``calls[module name]``."""
    handles = []
    for name, m in model.named_modules():
        if type(m).__name__ in KINKS:

            def hook(mod, inp, out, name=name):
                calls.setdefault(name, []).append(np.array(inp[0].data))

            handles.append(m.register_forward_hook(hook))
    return handles


def _follow_kinks(twin: torch.nn.Module, calls: dict) -> list:
    """Forward hooks on the torch twin: each ReLU / MaxPool2d call takes the branch that the
    recorded call took (the same active inputs, the same window winners)."""
    seen: dict = {}
    handles = []
    for name, m in twin.named_modules():
        if type(m).__name__ in KINKS:

            def hook(mod, inp, out, name=name):
                k = seen[name] = seen.get(name, -1) + 1
                recorded = torch.from_numpy(calls[name][k])
                if isinstance(mod, torch.nn.ReLU):
                    return inp[0] * (recorded > 0).to(inp[0].dtype)
                _, idx = torch.nn.functional.max_pool2d(
                    recorded, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                    return_indices=True,
                )  # fmt: skip
                return inp[0].flatten(2).gather(2, idx.flatten(2)).view_as(out)

            handles.append(m.register_forward_hook(hook))
    return handles


def compare_along_branches(model: nn.Module, exact: torch.nn.Module, x: np.ndarray, train: bool, what: str):
    """A float32 model against its float64 torch twin ``exact`` on the branches the float32 run took.

    A deep ReLU network's gradient jumps where a ReLU's input crosses zero: when the float64
    input lies within the float32 round-off of zero, any float32 library (PyTorch's too) may
    land on the other side and move a gradient by a whole term. ``exact`` therefore takes, at
    every ReLU and max pool, the branch ``model``'s float32 run took (its value there differs
    by less than that round-off); what is left to compare is the accumulated round-off, within
    the float32 bound of :func:`assert_net_close`. Outputs, input gradients, parameter gradients.
    """
    calls: dict = {}
    model.zero_grad()
    exact.zero_grad()
    model.train(train)
    exact.train(train)
    dropout_off(model)
    dropout_off(exact)
    handles = _record_kinks(model, calls)
    xc = cs.tensor(x, dtype=x.dtype, requires_grad=True)
    out_c = model(xc)
    for h in handles:
        h.remove()
    handles = _follow_kinks(exact, calls)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    out_t = exact(xt)
    for h in handles:
        h.remove()
    g = np.random.default_rng(1).standard_normal(out_t.shape).astype(x.dtype)
    (out_c * cs.tensor(g, dtype=g.dtype)).sum().backward()
    (out_t * torch.from_numpy(g.astype(np.float64))).sum().backward()
    dtype = torch.float32 if x.dtype == np.float32 else torch.float64
    assert_net_close(out_c, out_t.to(dtype), f"{what} output")
    assert_net_close(xc.grad, xt.grad.to(dtype), f"{what} input gradient")
    grads_t = dict(exact.named_parameters())
    for name, p in model.named_parameters():
        assert_net_close(p.grad, grads_t[name].grad.to(dtype), f"{what} gradient of {name}")
