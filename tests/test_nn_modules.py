"""Module behaviour: registration, state_dict keys equal to PyTorch's, strict loading, init, repr."""

from collections import OrderedDict

import numpy as np
import pytest
import torch

import convscope as cs
from convscope import nn


def make_pair():
    """The same small network in convscope and PyTorch."""

    def build(m):
        return m.Sequential(
            OrderedDict(
                [
                    ("conv1", m.Conv2d(3, 8, 3, padding=1)),
                    ("bn1", m.BatchNorm2d(8)),
                    ("relu", m.ReLU()),
                    ("pool", m.MaxPool2d(2)),
                    ("block", m.Sequential(m.Conv2d(8, 8, 3, padding=1, bias=False), m.BatchNorm2d(8))),
                    ("gap", m.AdaptiveAvgPool2d(1)),
                    ("flat", m.Flatten()),
                    ("fc", m.Linear(8, 4)),
                ]
            )
        )

    return build(nn), build(torch.nn)


def copy_torch_weights(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def test_state_dict_keys_and_shapes_match_pytorch():
    ours, theirs = make_pair()
    ko = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    kt = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ko) == list(kt)
    assert ko == kt
    assert "bn1.num_batches_tracked" in ko
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_loaded_torch_weights_give_torch_outputs_in_train_and_eval():
    ours, theirs = make_pair()
    copy_torch_weights(ours, theirs)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        out_o = ours(cs.tensor(x)).numpy()
        out_t = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(out_o, out_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ours.bn1.running_mean.numpy(), theirs.bn1.running_mean.numpy(), rtol=1e-5, atol=1e-6
    )
    assert int(ours.bn1.num_batches_tracked.item()) == int(theirs.bn1.num_batches_tracked.item()) == 1


def test_load_state_dict_strict_errors():
    ours, _ = make_pair()
    sd = ours.state_dict()
    missing = OrderedDict((k, v) for k, v in sd.items() if k != "fc.bias")
    with pytest.raises(ValueError, match=r"missing keys: 'fc.bias'"):
        ours.load_state_dict(missing)
    extra = OrderedDict(sd, **{"head.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"unexpected keys: 'head.weight'"):
        ours.load_state_dict(extra)
    bad = OrderedDict(sd)
    bad["fc.weight"] = np.zeros((5, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"size mismatch for fc.weight.*\(5, 8\).*\(4, 8\)"):
        ours.load_state_dict(bad)
    result = ours.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["fc.bias"] and result.unexpected_keys == []
    with pytest.raises(RuntimeError):  # also PyTorch's exception class
        ours.load_state_dict(extra)


def test_parameters_registration_and_modes():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5), nn.Linear(2, 2))
    assert len(list(m.parameters())) == 4
    assert m.training and m[1].training
    m.eval()
    assert not m[1].training
    assert isinstance(m[-1], nn.Linear) and isinstance(m[0:2], nn.Sequential) and len(m[0:2]) == 2
    ml = nn.ModuleList([nn.ReLU(), nn.Linear(3, 3)])
    assert len(list(ml.parameters())) == 2 and isinstance(ml[1], nn.Linear)
    shared = nn.Linear(3, 3)
    twice = nn.Sequential(shared, shared)
    assert len(list(twice.parameters())) == 2  # shared parameters listed once
    m.zero_grad()
    with pytest.raises(TypeError, match="Parameter or None"):
        m[0].weight = cs.randn(2, 1, 3, 3)


def test_repr_is_readable():
    m = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Linear(16, 10, bias=False),
        nn.BatchNorm2d(16),
    )
    text = repr(m)
    assert "(0): Conv2d(3, 16, kernel_size=3, stride=2, padding=1)" in text
    assert "(2): MaxPool2d(kernel_size=2)" in text
    assert "Linear(in_features=16, out_features=10, bias=False)" in text
    assert "BatchNorm2d(16)" in text


@pytest.mark.parametrize(
    "layer,fan_in",
    [
        (lambda: nn.Conv2d(16, 32, 3), 16 * 9),
        (lambda: nn.Linear(200, 300), 200),
        (lambda: nn.ConvTranspose2d(8, 12, 4, groups=2), 6 * 16),
    ],
)
def test_default_init_follows_pytorch_distribution(layer, fan_in):
    cs.manual_seed(0)
    m = layer()
    bound = 1 / np.sqrt(fan_in)
    w = m.weight.numpy()
    assert w.dtype == np.float32
    assert np.abs(w).max() <= bound + 1e-7
    # U(-b, b) has standard deviation b / sqrt(3)
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    b = m.bias.numpy()
    assert np.abs(b).max() <= bound + 1e-7


def test_init_functions():
    cs.manual_seed(0)
    w = nn.Parameter(np.empty((256, 128, 3, 3), dtype=np.float32))
    nn.init.normal_(w, 0.0, 0.01)
    assert abs(w.numpy().std() - 0.01) < 1e-3 and w.dtype == np.float32
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - np.sqrt(2 / (256 * 9))) < 1e-3
    nn.init.xavier_uniform_(w)
    bound = np.sqrt(6 / (128 * 9 + 256 * 9))
    assert np.abs(w.numpy()).max() <= bound
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(w.numpy()).max() <= np.sqrt(2) * np.sqrt(3 / (128 * 9)) + 1e-7
    nn.init.constant_(w, 0.5)
    assert (w.numpy() == 0.5).all()
    nn.init.zeros_(w)
    assert (w.numpy() == 0).all()
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2.0 * np.sqrt(2 / (128 * 9 + 256 * 9))) < 1e-3


def test_forward_hooks():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    seen = []
    handle = m[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    m(cs.randn(1, 1, 5, 5))
    handle.remove()
    m(cs.randn(1, 1, 5, 5))
    assert seen == [(1, 2, 3, 3)]


def test_get_submodule_lists_valid_names():
    m = nn.Sequential(OrderedDict([("features", nn.Sequential(nn.Conv2d(1, 2, 3))), ("fc", nn.Linear(2, 2))]))
    assert isinstance(m.get_submodule("features.0"), nn.Conv2d)
    with pytest.raises(ValueError, match="valid names: features, features.0, fc"):
        m.get_submodule("features.3")


def test_module_to_float64():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m[1].num_batches_tracked.dtype == np.int64
    out = m(cs.randn(2, 1, 5, 5, dtype=cs.float64))
    assert out.dtype == np.float64
    with pytest.raises(TypeError, match="dtype float32 does not match weight dtype float64"):
        m(cs.randn(2, 1, 5, 5))


def test_analysis_tools_keep_each_layers_mode():
    import convscope

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    model[1].eval()  # e.g. a frozen BatchNorm inside a training model
    convscope.summary(model, "1x8x8")
    assert model.training and not model[1].training
    with model.evaluating():
        assert not any(m.training for m in model.modules())
    assert model.training and not model[1].training
