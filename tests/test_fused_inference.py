"""The CIFAR ResNet's fused inference passes (eval batch norm + ReLU, add + ReLU): the same
output bit for bit as the unfused modules on every backend, and taken only in plain
inference (a hook, a recorded tape or training mode runs the modules as written)."""

from __future__ import annotations

import numpy as np

import convscope as cs
from convscope import models, nn
from convscope.nn.functional import _fused as fused


def _model():
    cs.manual_seed(0)
    model = models.create("resnet20", num_classes=10)
    rng = np.random.default_rng(1)
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = rng.standard_normal(m.num_features).astype(np.float32) * 0.1
            m.running_var.data[...] = rng.uniform(0.5, 2.0, m.num_features).astype(np.float32)
    return model.eval()


def test_fused_inference_equals_unfused(backend):
    model = _model()
    x = cs.tensor(np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32))
    calls = []
    original = fused.call

    def counting(family, name, *args):
        calls.append(name)
        return original(family, name, *args)

    fused.call = counting
    try:
        with cs.no_grad():
            out_fused = model(x).numpy()
    finally:
        fused.call = original
    assert calls.count("channel_affine_relu") == 10 and calls.count("add_relu") == 9
    out_plain = model(x).detach().numpy()  # a recorded tape: the modules as written
    np.testing.assert_array_equal(out_fused, out_plain)


def test_hooks_and_training_take_the_modules():
    bn, relu = nn.BatchNorm2d(3).eval(), nn.ReLU()
    x = cs.tensor(np.random.default_rng(3).standard_normal((2, 3, 4, 4)).astype(np.float32))
    seen = []
    handle = relu.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with cs.no_grad():
        fused.batch_norm_relu(bn, relu, x)
        fused.add_relu(relu, x, x)
    handle.remove()
    assert len(seen) == 2  # the hooked ReLU ran both times
    bn.train()
    with cs.no_grad():
        out = fused.batch_norm_relu(bn, relu, x)
    assert int(bn.num_batches_tracked.data) == 1  # training mode ran the module (statistics)
    assert (out.numpy() >= 0).all()
