"""Training's fused tape nodes: batch norm + ReLU (BatchNormTrainOp with ``relu``) and residual
add + ReLU (AddReLUOp). On every backend a training step through them gives the same loss,
gradients and running statistics, bit for bit, as the unfused modules; they are taken only for
train-mode modules without hooks (evaluation with a tape, e.g. Grad-CAM or ONNX export, and
SyncBatchNorm run the modules as written)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope import models, nn
from convscope.autograd.engine import topological_order
from convscope.autograd.tensor import Tensor
from convscope.distributed.sync_bn import SyncBatchNorm
from convscope.nn.functional import _fused as fused


def _batch(n=6, size=16):
    rng = np.random.default_rng(0)
    x = Tensor._wrap(rng.standard_normal((n, 3, size, size)).astype(np.float32), False)
    return x, Tensor._wrap(np.arange(n) % 10, False)


def _nodes(loss) -> list[str]:
    names = []
    for node in topological_order(loss.grad_fn):
        relu_out = getattr(node, "relu_out", None)
        names.append(node.fn.__name__ + ("+relu" if relu_out is not None else ""))
    return names


def _unfuse(model):
    """A hook on every batch norm and ReLU: the modules then run as written."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.ReLU)):
            m.register_forward_hook(lambda *args: None)
    return model


def _step(model, x, y):
    """(loss, the tape's node names, gradients, state after the step's forward)."""
    model.train()
    loss = F.cross_entropy(model(x), y)
    nodes = _nodes(loss)  # before backward frees the tape
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    return float(loss.data), nodes, grads, state


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _sequential():
    """Conv + BN + ReLU runs in nn.Sequential, a stride-2 one with a bias, then the classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


@pytest.mark.parametrize("name", ["resnet20", "sequential"])
def test_fused_training_step_equals_unfused(backend, name):
    cs.manual_seed(0)
    model = models.create(name, num_classes=10) if name == "resnet20" else _sequential()
    x, y = _batch()
    loss_f, nodes_f, grads_f, state_f = _step(copy.deepcopy(model), x, y)
    loss_u, nodes_u, grads_u, state_u = _step(_unfuse(copy.deepcopy(model)), x, y)
    if name == "resnet20":  # the stem and each block's first conv: BN + ReLU; each block's end: add + ReLU
        assert nodes_f.count("BatchNormTrainOp+relu") == 10 and nodes_f.count("AddReLUOp") == 9
    else:
        assert nodes_f.count("BatchNormTrainOp+relu") == 2
    assert "BatchNormTrainOp+relu" not in nodes_u and "AddReLUOp" not in nodes_u
    assert loss_f == loss_u
    assert _same(grads_f, grads_u)
    assert _same(state_f, state_u)  # running statistics and num_batches_tracked


def test_relu_mask_reaches_both_residual_inputs(backend):
    """AddReLUOp hands one masked gradient to both inputs; the engine sums it into new arrays."""
    rng = np.random.default_rng(1)
    a = cs.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32), requires_grad=True)
    relu = nn.ReLU()
    out = fused.add_relu(relu, a, a)  # both inputs the same tensor
    assert out.grad_fn is not None and out.grad_fn.fn.__name__ == "AddReLUOp"
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(cs.tensor(g))
    expected = 2 * g * (2 * a.numpy() > 0)
    np.testing.assert_array_equal(a.grad.numpy(), expected)


def test_evaluation_with_a_tape_and_sync_bn_are_not_fused():
    cs.manual_seed(0)
    model = models.create("resnet20", num_classes=10)
    x, y = _batch(n=4)
    model.eval()  # e.g. Grad-CAM: a tape in eval mode
    nodes = _nodes(F.cross_entropy(model(x), y))
    assert "AddReLUOp" not in nodes and "BatchNormTrainOp+relu" not in nodes
    # SyncBatchNorm has its own op (its statistics span the ranks)
    assert fused._training_bn(nn.BatchNorm2d(3).train()) and not fused._training_bn(SyncBatchNorm(3).train())


def test_fused_training_checks_input_like_the_module():
    bn, relu = nn.BatchNorm2d(3).train(), nn.ReLU()
    bad = cs.tensor(np.zeros((1, 3, 1, 1), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fused.batch_norm_relu(bn, relu, bad)
    assert int(bn.num_batches_tracked.data) == 1  # as the module's own forward counts it
