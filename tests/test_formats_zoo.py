"""Zoo models load torchvision-layout .pth files written by torch and then compute torch's outputs.

The torch architectures are the hand-written torchvision rebuilds of test_models_zoo.py
(torchvision itself does not import beside this torch build). The big ones (AlexNet, VGG:
their classifiers hold 100M+ parameters) are in the slow tier.
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope import models

torch = pytest.importorskip("torch")
from test_models_zoo import tnn, torch_oracle  # noqa: E402

FAST = ["resnet18", "resnet50"]
SLOW = ["resnet34", "alexnet"] + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
HW = {"alexnet": 64, "vgg": 64}  # VGG at 32 sees a 1x1 map: two inputs barely differ


@pytest.fixture
def no_random_init(monkeypatch):
    """Skip our models' random initialisation (every value is overwritten by the loaded file;
    drawing 100M+ normals dominated the big models' test time)."""
    import convscope.nn.init as init

    for name in ("normal_", "uniform_", "kaiming_normal_", "kaiming_uniform_", "trunc_normal_"):
        monkeypatch.setattr(init, name, lambda tensor, *args, **kwargs: tensor)


def _randomise(model) -> None:
    with torch.no_grad():  # non-trivial BN statistics and affines test eval-mode BN too
        for m in model.modules():
            if isinstance(m, (tnn.Conv2d, tnn.Linear)):
                m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.01)
            elif isinstance(m, tnn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0.0, 0.1)


def _check(name, tmp_path, suffix=".pth"):
    torch.manual_seed(0)
    theirs = torch_oracle(name, 10, device="cpu").eval()
    _randomise(theirs)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".pth":
        torch.save(theirs.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(theirs.state_dict(), str(path))
    ours = models.create(name, num_classes=10).eval()
    ours.load_state_dict(cs.load(path))
    hw = HW.get(name, HW.get(name[:3], 32))
    x = np.random.default_rng(1).standard_normal((2, 3, hw, hw)).astype(np.float32)
    with torch.no_grad():
        if name.startswith("vgg"):  # the VGG rebuild is a plain Module holding torchvision's parts
            features = theirs.avgpool(theirs.features(torch.from_numpy(x)))
            expected = theirs.classifier(torch.flatten(features, 1)).numpy()
        else:
            expected = theirs(torch.from_numpy(x)).numpy()
    with cs.no_grad():
        got = ours(cs.tensor(x)).numpy()
    atol = 1e-4 * np.abs(expected).max()
    # the two inputs' outputs differ by far more than the tolerance, so matching means something
    # (deep random VGGs are input-insensitive: their outputs differ by ~9% of their size here)
    assert np.abs(expected[0] - expected[1]).max() > 100 * atol
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", FAST)
def test_zoo_model_matches_torch_after_loading_its_pth(name, tmp_path, no_random_init):
    _check(name, tmp_path)


def test_zoo_model_from_safetensors(tmp_path):
    pytest.importorskip("safetensors")
    _check("resnet18", tmp_path, ".safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_big_zoo_model_matches_torch_after_loading_its_pth(name, tmp_path, no_random_init):
    _check(name, tmp_path)
