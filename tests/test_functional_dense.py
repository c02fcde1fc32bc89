"""Parity with torch.nn.functional for the dense ops: activations, linear, losses, batch_norm, dropout."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convscope as cs
import convscope.nn.functional as F
from parity import assert_close, assert_gradcheck, assert_parity

# every test runs under each kernel backend (reference in the slow tier, native in the native tier)
pytestmark = pytest.mark.usefixtures("backend")

ACTIVATIONS = [
    (F.relu, TF.relu),
    (F.sigmoid, torch.sigmoid),
    (F.tanh, torch.tanh),
    (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    (lambda x: F.leaky_relu(x), lambda x: TF.leaky_relu(x)),
    (lambda x: F.softmax(x, dim=1), lambda x: TF.softmax(x, dim=1)),
    (lambda x: F.softmax(x, dim=-1), lambda x: TF.softmax(x, dim=-1)),
    (lambda x: F.log_softmax(x, dim=1), lambda x: TF.log_softmax(x, dim=1)),
    (lambda x: F.log_softmax(x, dim=0), lambda x: TF.log_softmax(x, dim=0)),
]


@pytest.mark.parametrize("i", range(len(ACTIVATIONS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_parity(i, dtype):
    ours, theirs = ACTIVATIONS[i]
    x = (np.random.default_rng(i).standard_normal((4, 5, 3)) * 3).astype(dtype)
    assert_parity(ours, theirs, [x])


@pytest.mark.parametrize("i", range(len(ACTIVATIONS)))
def test_activation_gradcheck(i):
    x = np.random.default_rng(i).standard_normal((3, 4, 2)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu / leaky_relu
    assert_gradcheck(ACTIVATIONS[i][0], [x])


def test_sigmoid_extremes_do_not_overflow():
    x = cs.tensor([-1000.0, 0.0, 1000.0])
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_allclose(F.sigmoid(x).numpy(), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("shape,bias", [((5, 7), True), ((2, 3, 7), False), ((1, 7), True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_parity(shape, bias, dtype):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((4, 7)) / np.sqrt(7)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype) if bias else None
    assert_parity(F.linear, TF.linear, [x, w, b])
    assert_gradcheck(F.linear, [x, w, b])


CE_CASES = [
    dict(),
    dict(label_smoothing=0.1),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(ignore_index=2),
    dict(ignore_index=2, label_smoothing=0.2),
    dict(weight=True),
    dict(weight=True, label_smoothing=0.3, ignore_index=1),
    dict(weight=True, reduction="none"),
    dict(weight=True, reduction="sum", label_smoothing=0.05),
]


@pytest.mark.parametrize("case", range(len(CE_CASES)))
@pytest.mark.parametrize("spatial", [(), (3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_parity(case, spatial, dtype):
    kw = dict(CE_CASES[case])
    rng = np.random.default_rng(case)
    n, c = 6, 5
    logits = (rng.standard_normal((n, c) + spatial) * 2).astype(dtype)
    target = rng.integers(0, c, (n,) + spatial)
    target.reshape(-1)[0] = kw.get("ignore_index", 0)  # make sure an ignored row exists when asked
    weight = rng.uniform(0.5, 2.0, c).astype(dtype) if kw.pop("weight", False) else None

    def ours(x, t):
        return F.cross_entropy(x, t, weight=None if weight is None else cs.tensor(weight, dtype=dtype), **kw)

    def theirs(x, t):
        return TF.cross_entropy(x, t, weight=None if weight is None else torch.tensor(weight), **kw)

    assert_parity(ours, theirs, [logits, target])
    assert_gradcheck(ours, [logits.astype(np.float64), target])


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_probability_targets(smoothing):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), 4).astype(np.float32)
    assert_parity(
        lambda x: F.cross_entropy(x, cs.tensor(probs), label_smoothing=smoothing),
        lambda x: TF.cross_entropy(x, torch.tensor(probs), label_smoothing=smoothing),
        [logits],
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_parity(reduction, weighted):
    rng = np.random.default_rng(1)
    logp = np.log(rng.dirichlet(np.ones(4), 7)).astype(np.float32)
    target = rng.integers(0, 4, 7)
    target[0] = 3
    w = rng.uniform(0.5, 2, 4).astype(np.float32) if weighted else None
    assert_parity(
        lambda x, t: F.nll_loss(
            x, t, None if w is None else cs.tensor(w), reduction=reduction, ignore_index=3
        ),
        lambda x, t: TF.nll_loss(
            x, t, None if w is None else torch.tensor(w), reduction=reduction, ignore_index=3
        ),
        [logp, target],
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_parity(reduction):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert_parity(
        lambda x, y: F.mse_loss(x, y, reduction=reduction),
        lambda x, y: TF.mse_loss(x, y, reduction=reduction),
        [a, b],
    )
    assert_gradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), [a, b])


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (5, 3, 4, 6), (2, 3, 1, 1)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_parity_and_running_stats(shape, training, affine, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    w = rng.uniform(0.5, 1.5, 3).astype(dtype) if affine else None
    b = rng.standard_normal(3).astype(dtype) if affine else None
    rm0 = rng.standard_normal(3).astype(dtype)
    rv0 = rng.uniform(0.5, 2, 3).astype(dtype)
    rm_c, rv_c = cs.tensor(rm0, dtype=dtype), cs.tensor(rv0, dtype=dtype)
    rm_t, rv_t = torch.tensor(rm0), torch.tensor(rv0)
    assert_parity(
        lambda x, w, b: F.batch_norm(x, rm_c, rv_c, w, b, training=training, momentum=0.3),
        lambda x, w, b: TF.batch_norm(x, rm_t, rv_t, w, b, training=training, momentum=0.3),
        [x, w, b],
    )
    assert_close(rm_c.numpy(), rm_t.numpy(), dtype, "running_mean")
    assert_close(rv_c.numpy(), rv_t.numpy(), dtype, "running_var")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 2, 2))
    w, b = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    rm, rv = cs.tensor(np.zeros(3), dtype=cs.float64), cs.tensor(np.ones(3), dtype=cs.float64)
    assert_gradcheck(
        lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0),
        [x, w, b],
        rtol=1e-5,
        atol=1e-7,
    )


def test_dropout_statistics_and_modes():
    cs.manual_seed(0)
    x = cs.ones(200, 500, requires_grad=True)
    y = F.dropout(x, 0.3)
    kept = (y.numpy() != 0).mean()
    assert abs(kept - 0.7) < 0.01
    np.testing.assert_allclose(np.unique(y.numpy()), [0.0, 1 / 0.7], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # gradient uses the same mask
    assert F.dropout(x, 0.3, training=False) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.dropout(x, 1.5)
