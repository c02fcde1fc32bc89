"""Tensor and tape behaviour: dtypes, accumulation, no_grad, topological order, hooks, errors."""

import numpy as np
import pytest
import torch

import convscope as cs
from parity import assert_gradcheck, assert_parity


def test_default_dtypes_never_float64():
    assert cs.tensor([1.0, 2.0]).dtype == np.float32
    assert cs.tensor(np.zeros(3)).dtype == np.float32  # float64 data becomes float32
    assert cs.tensor(np.zeros(3), dtype=cs.float64).dtype == np.float64
    assert cs.tensor([1, 2]).dtype == np.int64
    x = cs.randn(3)
    assert (x * 0.5).dtype == np.float32
    assert (x * np.float64(0.5)).dtype == np.float32
    assert (2.0 / x).dtype == np.float32
    assert (x**2).dtype == np.float32
    assert x.mean().dtype == np.float32
    assert (cs.tensor([1, 2]) / 2).dtype == np.float32


def test_gradients_accumulate_and_zero_grad():
    x = cs.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1, 1, 1])


def test_shared_subexpression_diamond():
    # y = a*b used twice: the node's gradient must be summed before flowing on
    a = cs.tensor([2.0], requires_grad=True)
    b = a * 3.0
    c = b * b + b
    c.backward()
    np.testing.assert_allclose(a.grad.numpy(), [2 * 6 * 3 + 3])


def test_no_grad_records_nothing():
    x = cs.randn(2, requires_grad=True)
    with cs.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @cs.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert cs.is_grad_enabled()


def test_deep_graph_does_not_recurse():
    x = cs.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_backward_twice_needs_retain_graph():
    x = cs.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)
    z = (x.exp()).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        z.backward()


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        cs.randn(2).sum().backward()
    x = cs.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="does not match"):
        (x * 2).backward(cs.ones(3))


def test_retain_grad_and_hooks():
    x = cs.randn(3, requires_grad=True)
    h = x * 2
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy(), rtol=1e-6)
    np.testing.assert_allclose(seen[0], 2 * h.numpy(), rtol=1e-6)


def test_detach_item_numpy():
    x = cs.tensor([[1.5]], requires_grad=True)
    assert x.item() == 1.5
    assert not x.detach().requires_grad
    assert isinstance(x.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="one element"):
        cs.randn(2).item()


def test_inplace_on_leaf_requiring_grad_is_refused():
    x = cs.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x[0] = 1.0
    with cs.no_grad():
        x[0] = 1.0
    assert x.numpy()[0] == 1.0


SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((5,), ())]


@pytest.mark.parametrize("sa,sb", SHAPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_binary_parity(sa, sb, op):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.uniform(0.5, 2.0, sb) * rng.choice([-1, 1], sb)).astype(np.float32)
    fn = {
        "add": lambda x, y: x + y,
        "sub": lambda x, y: x - y,
        "mul": lambda x, y: x * y,
        "div": lambda x, y: x / y,
    }[op]
    assert_parity(fn, fn, [a, b])


REDUCTIONS = [
    (lambda x: x.sum(), lambda x: x.sum()),
    (lambda x: x.sum(dim=1), lambda x: x.sum(dim=1)),
    (lambda x: x.mean(dim=(0, 2), keepdim=True), lambda x: x.mean(dim=(0, 2), keepdim=True)),
    (lambda x: x.max(dim=1)[0], lambda x: x.max(dim=1)[0]),
    (lambda x: x.max(), lambda x: x.max()),
    (lambda x: x.var(dim=2), lambda x: x.var(dim=2)),
    (lambda x: x.std(), lambda x: x.std()),
    (lambda x: x.reshape(6, 4).transpose(0, 1), lambda x: x.reshape(6, 4).transpose(0, 1)),
    (lambda x: x.permute(2, 0, 1)[1:, ::2], lambda x: x.permute(2, 0, 1)[1:, ::2]),
    (lambda x: x[:, [0, 0, 2]], lambda x: x[:, [0, 0, 2]]),
    (lambda x: x.flatten(1).exp().log(), lambda x: x.flatten(1).exp().log()),
    (lambda x: (x.abs() + 1).sqrt(), lambda x: (x.abs() + 1).sqrt()),
    (lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5)),
    (lambda x: x.unsqueeze(0).expand(3, 2, 3, 4), lambda x: x.unsqueeze(0).expand(3, 2, 3, 4)),
    (lambda x: cs.cat([x, x * 2], 1), lambda x: torch.cat([x, x * 2], 1)),
    (lambda x: cs.stack([x, x * 2], 0), lambda x: torch.stack([x, x * 2], 0)),
    (lambda x: x @ x.transpose(1, 2), lambda x: x @ x.transpose(1, 2)),
    (lambda x: x**3, lambda x: x**3),
]


@pytest.mark.parametrize("i", range(len(REDUCTIONS)))
def test_tensor_op_parity(i):
    ours, theirs = REDUCTIONS[i]
    x = np.random.default_rng(i).standard_normal((2, 3, 4)).astype(np.float32)
    assert_parity(ours, theirs, [x])


@pytest.mark.parametrize("i", range(len(REDUCTIONS)))
def test_tensor_op_gradcheck(i):
    ours, _ = REDUCTIONS[i]
    x = np.random.default_rng(i).standard_normal((2, 3, 4))
    assert_gradcheck(ours, [x])


def test_matmul_vector_cases():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    v = rng.standard_normal(4).astype(np.float32)
    assert_parity(lambda x, y: x @ y, lambda x, y: x @ y, [a, v])
    assert_parity(lambda x, y: y @ x.T, lambda x, y: y @ x.T, [a, v])


def test_where_parity():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    assert_parity(lambda x, y: cs.where(x > y, x, y), lambda x, y: torch.where(x > y, x, y), [a, b])


def test_custom_backward_returning_python_floats_accumulates():
    # a user Function may return plain Python numbers as gradients; summing two of them for
    # one node must work like NumPy addition
    class Triple(cs.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def backward(ctx, g):
            return float(g) * 3.0

    x = cs.tensor(2.0, requires_grad=True)
    h = x * 1.0  # a non-leaf used twice
    total = Triple.apply(h) + Triple.apply(h)
    total.backward()
    assert x.grad.item() == 6.0
