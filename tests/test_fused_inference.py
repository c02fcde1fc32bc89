"""The fused inference passes (conv + eval batch norm + ReLU, batch norm + ReLU, add + ReLU, in the
CIFAR ResNet and in nn.Sequential): the same output bit for bit as the unfused modules on every
backend, and taken only in plain inference (a hook, a recorded tape or training mode runs the
modules as written; training's own fused tape nodes are tested in test_fused_training.py)."""

from __future__ import annotations

import numpy as np

import convscope as cs
from convscope import models, nn
from convscope.nn.functional import _fused as fused
from convscope.ops import conv as conv_ops


def _model():
    cs.manual_seed(0)
    model = models.create("resnet20", num_classes=10)
    rng = np.random.default_rng(1)
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = rng.standard_normal(m.num_features).astype(np.float32) * 0.1
            m.running_var.data[...] = rng.uniform(0.5, 2.0, m.num_features).astype(np.float32)
    return model.eval()


class _Counting:
    """Counts the fused passes taken: conv epilogues (with/without batch norm, ReLU), add + ReLU."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        original_call, original_conv = fused.call, conv_ops.conv2d_inference

        def call(family, name, *args):
            self.calls.append(name)
            return original_call(family, name, *args)

        def conv(*args):
            scale, relu = args[7], args[9]
            self.calls.append("conv" + ("+bn" if scale is not None else "") + ("+relu" if relu else ""))
            return original_conv(*args)

        monkeypatch.setattr(fused, "call", call)
        monkeypatch.setattr(conv_ops, "conv2d_inference", conv)


def test_fused_inference_equals_unfused(backend, monkeypatch):
    model = _model()
    x = cs.tensor(np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32))
    counting = _Counting(monkeypatch)
    with cs.no_grad():
        out_fused = model(x).numpy()
    calls = counting.calls
    assert calls.count("conv+bn+relu") == 10 and calls.count("conv+bn") == 9 and calls.count("add_relu") == 9
    out_plain = model(x).detach().numpy()  # a recorded tape: the modules as written
    np.testing.assert_array_equal(out_fused, out_plain)


def _sequential():
    """Conv runs with batch norm and ReLU, without either, odd map sizes (vector tails), strides,
    a bias or none, 16/32/64 output channels (both tile kinds of the native kernel)."""
    cs.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 64, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.Conv2d(64, 32, 1),
        nn.ReLU(),
        nn.Conv2d(32, 6, 3, padding=2),
        nn.Conv2d(6, 5, 3),  # conv followed by nothing fusable
        nn.ReLU(),
        nn.Flatten(),
    )
    rng = np.random.default_rng(4)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = rng.standard_normal(m.num_features).astype(np.float32)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, m.num_features).astype(np.float32)
            m.weight.data[...] = rng.standard_normal(m.num_features).astype(np.float32)
    return model.eval()


def test_sequential_fuses_conv_runs_bit_for_bit(backend, monkeypatch):
    model = _sequential()
    x = cs.tensor(np.random.default_rng(5).standard_normal((3, 3, 38, 46)).astype(np.float32))
    x.data[0, 0, :3, :3] = np.nan  # NaNs pass through every pass alike
    counting = _Counting(monkeypatch)
    with cs.no_grad():
        out_fused = model(x).numpy()
    assert counting.calls == ["conv+bn+relu", "conv+bn", "conv+relu", "conv+relu"]
    out_plain = model(x).detach().numpy()
    np.testing.assert_array_equal(out_fused.view(np.uint32), out_plain.view(np.uint32))
    lenet = models.create("lenet5", in_channels=1).eval()
    digits = cs.tensor(np.random.default_rng(6).standard_normal((5, 1, 28, 28)).astype(np.float32))
    with cs.no_grad():
        fused_digits = lenet(digits).numpy()
    np.testing.assert_array_equal(fused_digits, lenet(digits).detach().numpy())


def test_sequential_runs_hooked_and_training_modules_as_written():
    model = _sequential()
    x = cs.tensor(np.random.default_rng(7).standard_normal((2, 3, 16, 16)).astype(np.float32))
    seen = []
    handle = model[0].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with cs.no_grad():
        model(x)
    handle.remove()
    assert seen == [(2, 16, 16, 16)]  # the hooked conv ran as a module
    model.train()
    with cs.no_grad():
        model(x)
    assert int(model[1].num_batches_tracked.data) == 1  # training-mode batch norm ran (statistics)


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
