"""to_fully_convolutional: FC layers become convolutions that slide over larger images."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope import models, nn
from convscope.models import to_fully_convolutional


def _x(*shape, seed=0):
    return cs.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _net(pool=None, hw=3):
    cs.manual_seed(0)
    layers = [nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU()]
    layers += [pool] if pool is not None else []
    layers += [nn.Flatten(), nn.Linear(6 * hw * hw, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 5)]
    return nn.Sequential(*layers).eval()


def test_sequential_without_padding_equals_the_model_on_every_crop():
    model = _net()
    fcn = to_fully_convolutional(model, (2, 12, 12)).eval()
    assert isinstance(model[5], nn.Flatten) and isinstance(model[6], nn.Linear)  # original unchanged
    assert isinstance(fcn[6], nn.Conv2d) and fcn[6].weight.shape == (16, 6, 3, 3)
    assert isinstance(fcn[9], nn.Conv2d) and fcn[9].weight.shape == (5, 16, 1, 1)
    with cs.no_grad():
        small = _x(3, 2, 12, 12)
        np.testing.assert_allclose(fcn(small).numpy()[:, :, 0, 0], model(small).numpy(), rtol=1e-5, atol=1e-5)
        assert fcn(small).shape == (3, 5, 1, 1)
        big = _x(2, 2, 20, 18, seed=1)
        scores = fcn(big).numpy()
        assert scores.shape == (2, 5, 5, 4)  # (20 - 12) // 2 + 1, (18 - 12) // 2 + 1: total stride 2
        for i in range(5):
            for j in range(4):
                crop = cs.tensor(big.numpy()[:, :, 2 * i : 2 * i + 12, 2 * j : 2 * j + 12])
                np.testing.assert_allclose(scores[:, :, i, j], model(crop).numpy(), rtol=1e-5, atol=1e-5)


def test_identity_adaptive_pool_is_removed():
    model = _net(nn.AdaptiveAvgPool2d(3))
    fcn = to_fully_convolutional(model, (2, 12, 12)).eval()
    assert isinstance(fcn[5], nn.Identity)
    with cs.no_grad():
        x = _x(1, 2, 16, 16)
        assert fcn(x).shape == (1, 5, 3, 3)
        np.testing.assert_allclose(
            fcn(x).numpy()[:, :, 1, 2],
            model(cs.tensor(x.numpy()[:, :, 2:14, 4:16])).numpy(),
            rtol=1e-5,
            atol=1e-5,
        )


def test_resnet_global_pool_slides_over_the_feature_map():
    cs.manual_seed(0)
    model = models.create("resnet18", num_classes=7).eval()
    fcn = to_fully_convolutional(model, (3, 64, 64)).eval()
    assert model.model_name == "resnet18" and not hasattr(fcn, "model_name")
    with cs.no_grad():
        x = _x(1, 3, 64, 64)
        np.testing.assert_allclose(fcn(x).numpy()[:, :, 0, 0], model(x).numpy(), rtol=1e-4, atol=1e-5)
        big = _x(1, 3, 96, 96, seed=2)
        scores = fcn(big).numpy()
        assert scores.shape == (1, 7, 2, 2)
        captured = {}
        handle = model.layer4.register_forward_hook(lambda m, i, o: captured.update(fmap=o.numpy()))
        model(big)
        handle.remove()
        fmap = captured["fmap"]  # (1, 512, 3, 3): the head sees 2x2 windows of it
        w, b = model.fc.weight.numpy(), model.fc.bias.numpy()
        for i in range(2):
            for j in range(2):
                pooled = fmap[:, :, i : i + 2, j : j + 2].mean(axis=(2, 3))
                np.testing.assert_allclose(scores[:, :, i, j], pooled @ w.T + b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: _net(nn.AdaptiveAvgPool2d(2), hw=2), "neither the identity nor a global pool"),
        (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()), "no Linear"),
        (
            lambda: nn.Sequential(nn.Conv2d(2, 1, 12), nn.Flatten(), nn.BatchNorm1d(1), nn.Linear(1, 3)),
            "not an nn.Flatten",
        ),
        (
            lambda: nn.Sequential(nn.Conv2d(2, 1, 12), nn.Flatten(), nn.Linear(1, 3), nn.BatchNorm1d(3)),
            "'3' \\(BatchNorm1d\\) follows the flatten",
        ),
    ],
)
def test_unconvertible_models_get_clear_errors(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        to_fully_convolutional(build(), (2, 12, 12))


def test_reshape_in_forward_is_refused():
    class Reshaping(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(2, 3, 3), nn.Linear(3 * 10 * 10, 4)

        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    with pytest.raises(ValueError, match="not an nn.Flatten"):
        to_fully_convolutional(Reshaping(), (2, 12, 12))


@pytest.mark.slow
def test_alexnet_at_224_and_larger():
    cs.manual_seed(0)
    model = models.create("alexnet", num_classes=10).eval()
    fcn = to_fully_convolutional(model, (3, 224, 224)).eval()
    assert isinstance(fcn.avgpool, nn.Identity) and fcn.classifier[1].weight.shape == (4096, 256, 6, 6)
    with cs.no_grad():
        x = _x(1, 3, 224, 224)
        np.testing.assert_allclose(fcn(x).numpy()[:, :, 0, 0], model(x).numpy(), rtol=1e-4, atol=1e-5)
        assert fcn(_x(1, 3, 288, 256)).shape == (1, 10, 3, 2)
