"""to_torch / from_torch on every zoo model and on hand-built models: weights, outputs, gradients."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

import convscope as cs
from convscope import models, nn
from convscope.nn import functional as F
from convscope.torch import TranslationError, from_torch, to_torch
from torch_bridge_helpers import (
    assert_net_close,
    assert_same_state,
    compare_along_branches,
    compare_forward_backward,
)

# small spatial sizes keep the zoo cheap; one model per family runs in the default tier, the rest
# (the same code paths, bigger) in the slow tier
SIZES = {"alexnet": 64, "unet": 16, "simple": 28, "lenet5": 28, "tinyvgg": 64}
DEFAULT_TIER = {"lenet5", "simple", "tinyvgg", "resnet20", "resnet18", "unet", "fcn1d", "resnet1d"}
# Float32 runs are compared with the float64 twin taking the float32 run's branches at every ReLU
# and max pool (torch_bridge_helpers.compare_along_branches): a ReLU input within the float32
# round-off of zero may land on either side in any float32 library and move a gradient by a whole
# term (ResNet-34 eval: one such input, 1.3e-7 on values up to 8.3, puts PyTorch's own float32 input
# gradient 2.5e-3 from the float64 one), which says nothing about either library's accuracy.
# Train mode of these deep bottleneck ResNets is compared in float64 (where both libraries agree to
# ~1e-12): batch norm over their 1x1 maps of 8 images is ill-conditioned, and PyTorch's own float32
# result, even along its own branches, is that far from float64 (worst gradient, relative, measured
# with benchmarks/precision_vs_float64.py --branches): ResNet-50 4.3e-4, ResNet-101 4.3e-3,
# ResNet-152 8.6e-3 (convscope's float32: 3.4e-4 / 3.7e-3 / 1.4e-2 native, 4.1e-4 / 3.2e-3 / 1.1e-2 NumPy).
DEEP_BN = {"resnet50", "resnet101", "resnet152"}
ZOO = [n if n in DEFAULT_TIER else pytest.param(n, marks=pytest.mark.slow) for n in models.list_models()]


def _input(name: str) -> np.ndarray:
    shape = models.model_info(name).input_size
    if len(shape) == 2:  # (C, L) series models
        return np.random.default_rng(0).standard_normal((4, shape[0], 64)).astype(np.float32)
    c, h, w = shape
    size = SIZES.get(name, min(h, 16 if h == 32 else 32))
    # batch norm over a 1x1 map in train mode needs a batch of several images to be well conditioned
    n = 8 if size == 32 else 4
    return np.random.default_rng(0).standard_normal((n, c, size, size)).astype(np.float32)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("native", marks=pytest.mark.native)])
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_twin_and_round_trip(name, backend):
    with cs.backends.use(backend):
        _twin_and_round_trip(name)


def _twin_and_round_trip(name):
    cs.manual_seed(0)
    model = models.create(name)
    twin = to_torch(model)
    assert [n for n, _ in twin.named_modules()] == [n for n, _ in model.named_modules()]
    assert_same_state(model.state_dict(), twin.state_dict(), f"{name} to_torch")
    x = _input(name)
    back = from_torch(twin, torch.from_numpy(x))
    assert type(back) is type(model)
    assert_same_state(model.state_dict(), back.state_dict(), f"{name} round trip")
    exact = copy.deepcopy(twin).double()
    compare_along_branches(model, exact, x, False, f"{name} eval")
    if name in DEEP_BN:
        model.double()
        twin.double()
        compare_forward_backward(model, twin, x.astype(np.float64), True, f"{name} train")
        exact = twin
    else:
        compare_along_branches(model, exact, x, True, f"{name} train")
    # batch statistics were updated identically by the train-mode forward
    assert_bn_close(model, exact, name)


def assert_bn_close(model, twin, what):
    state_t = twin.state_dict()
    for key, value in model.state_dict().items():
        if "running" in key or "num_batches" in key:
            if value.data.dtype.kind == "i":
                assert int(value.data) == int(state_t[key]), f"{what}: {key}"
            else:  # the float64 twin's, rounded to the model's dtype
                theirs = state_t[key].to(getattr(torch, str(value.data.dtype)))
                assert_net_close(value, theirs, f"{what}: {key}")


def bn_net(momentum) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8, momentum=momentum),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8, momentum=momentum, eps=1e-3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 16),
        nn.BatchNorm1d(16, momentum=momentum),
        nn.ReLU(),
        nn.Linear(16, 5),
    )


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_statistics_follow_the_same_sgd_steps(momentum):
    cs.manual_seed(1)
    model = bn_net(momentum)
    twin = to_torch(model)
    assert [m.momentum for m in twin.modules() if "BatchNorm" in type(m).__name__] == [momentum] * 3
    opt_c = cs.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(2)
    model.train()
    twin.train()
    for _ in range(4):
        x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
        y = rng.integers(0, 5, 16)
        for opt, net, loss_fn, wrap in (
            (opt_c, model, nn.CrossEntropyLoss(), cs.tensor),
            (opt_t, twin, torch.nn.CrossEntropyLoss(), torch.from_numpy),
        ):
            opt.zero_grad()
            loss_fn(net(wrap(x)), wrap(y)).backward()
            opt.step()
    assert_bn_close(model, twin, f"momentum={momentum}")
    state_t = twin.state_dict()
    for key, value in model.state_dict().items():
        if value.data.dtype.kind == "f":
            assert_net_close(value, state_t[key], f"after 4 steps: {key}")
    assert int(state_t["1.num_batches_tracked"]) == 4
    # and the running statistics moved away from their initial values (the test can fail)
    assert float(np.abs(model[1].running_mean.data).max()) > 1e-3


class Mixer(nn.Module):
    """A hand-written forward: functional ops, cat, a module-level helper, slicing and super()."""

    scale = 0.5

    def __init__(self):
        super().__init__()
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.weight = nn.Parameter(np.linspace(-1, 1, 8 * 8 * 3).astype(np.float32).reshape(8, 8, 3, 1))
        self.register_buffer("offset", cs.tensor(np.full(8, 0.25, dtype=np.float32)))

    def forward(self, x):
        y = cs.cat([x, _half(self.branch(x))], dim=1)  # (N, 8, H, W)
        y = F.conv2d(F.pad(y, (0, 0, 1, 1)), self.weight, self.offset)
        return F.max_pool2d(F.leaky_relu(y, 0.2), 2) * self.scale + y[:, :, ::2, ::2].mean()


def _half(x):
    return F.relu(x) * 0.5


class Stack(nn.Sequential):
    def forward(self, x):
        return super().forward(x) + 1.0


def hand_built(dtype=np.float32):
    return nn.Sequential(
        OrderedDict(
            [
                ("stem", nn.Conv2d(3, 4, 3, padding="same", padding_mode="reflect")),
                ("bn", nn.BatchNorm2d(4, momentum=0.2, eps=1e-3)),
                ("mix", Mixer()),
                ("up", nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)),
                ("act", nn.Tanh()),
                ("pool", nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
                ("resize", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
                ("blocks", nn.ModuleList([nn.Identity(), nn.Sigmoid()])),
                ("stack", Stack(nn.AdaptiveMaxPool2d((3, 2)), nn.Flatten())),
                ("fc", nn.Linear(36, 7)),
                ("drop", nn.Dropout(0.3)),
                ("out", nn.LogSoftmax(dim=1)),
            ]
        )
    ).to(dtype)


class WithBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = hand_built()

    def forward(self, x):
        body = self.body
        for name, m in body.named_children():
            x = m[1](m[0](x)) if name == "blocks" else m(x)
        return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hand_built_model(dtype):
    cs.manual_seed(3)
    model = WithBlocks().to(dtype)
    twin = to_torch(model)
    assert type(twin.body.mix).__name__ == "Mixer" and isinstance(twin.body.mix, torch.nn.Module)
    assert isinstance(twin.body.stem, torch.nn.Conv2d) and twin.body.stem.padding_mode == "reflect"
    assert twin.body.bn.momentum == 0.2 and twin.body.bn.eps == 1e-3
    assert_same_state(model.state_dict(), twin.state_dict(), "to_torch")
    x = np.random.default_rng(4).standard_normal((3, 3, 10, 10)).astype(dtype)
    for train in (True, False):
        compare_forward_backward(model, twin, x, train, f"hand-built {np.dtype(dtype)} train={train}")
    back = from_torch(twin, torch.from_numpy(x))
    assert type(back.body.mix) is Mixer and type(back.body.stack) is Stack
    assert_same_state(twin.state_dict(), back.state_dict(), "round trip")


def test_conv1d_batchnorm1d_model():
    model = nn.Sequential(
        nn.Conv1d(2, 5, 3, stride=2, dilation=2, groups=1),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 4, 6),
        nn.BatchNorm1d(6, affine=False),
        nn.Softmax(dim=1),
    )
    twin = to_torch(model)
    assert isinstance(twin[0], torch.nn.Conv1d) and twin[0].dilation == (2,)
    x = np.random.default_rng(5).standard_normal((4, 2, 12)).astype(np.float32)
    for train in (True, False):
        compare_forward_backward(model, twin, x, train, f"conv1d train={train}")
    assert_same_state(twin.state_dict(), from_torch(twin, torch.from_numpy(x)).state_dict(), "round trip")


def test_eval_mode_and_requires_grad_are_kept():
    model = models.create("lenet5")
    model.eval()
    model.features.conv1.weight.requires_grad = False
    twin = to_torch(model)
    assert not any(m.training for m in twin.modules())
    assert not twin.features.conv1.weight.requires_grad and twin.features.conv2.weight.requires_grad
    assert twin.model_name == "lenet5" and twin.model_config["num_classes"] == 10


class UsesNumpy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return cs.tensor(np.tanh(self.fc(x).data))


def test_untranslatable_forward_names_the_module():
    model = nn.Sequential(nn.Linear(3, 3), UsesNumpy())
    with pytest.raises(TranslationError, match=r"'1' \(UsesNumpy\).*NumPy \('np'\)"):
        to_torch(model)
    with pytest.raises(
        ValueError,
        match=r"'0' \(Conv2d\(1, 2, kernel_size=3, stride=2, padding='same'\)\): padding='same' is not "
        r"supported for strided",
    ):
        to_torch(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding="same")))
    with pytest.raises(TypeError, match="expected a convscope.nn.Module, got Linear"):
        to_torch(torch.nn.Linear(2, 2))


def test_models_keep_working_with_the_shared_modules():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    twin = to_torch(model)
    assert twin[0] is twin[2]
    x = np.random.default_rng(6).standard_normal((2, 4)).astype(np.float32)
    compare_forward_backward(model, twin, x, True, "shared")
