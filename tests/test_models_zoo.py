"""The model zoo: published parameter counts, torchvision state-dict keys and initialisation,
Grad-CAM layers, and a forward + backward smoke test over every registered model.

torchvision is not installed, so a compact torch.nn rebuild of torchvision's AlexNet, VGG and
ResNet (below) is the oracle for keys, shapes and outputs (which pins ResNet V1.5's stride
placement); its own parameter counts are checked against the published numbers first. The
registry-driven tests share one module-scoped fixture per model, so each is built once.
"""

from collections import OrderedDict

import numpy as np
import pytest
import torch

import convscope as cs
from convscope import models, nn

tnn = torch.nn

# published parameter counts at 1000 classes (torchvision's model docs)
PUBLISHED = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M"] + [256] * 3 + ["M"] + ([512] * 3 + ["M"]) * 2,
    19: [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"] + ([512] * 4 + ["M"]) * 2,
}
RESNET_SPEC = {
    18: (False, [2, 2, 2, 2]),
    34: (False, [3, 4, 6, 3]),
    50: (True, [3, 4, 6, 3]),
    101: (True, [3, 4, 23, 3]),
    152: (True, [3, 8, 36, 3]),
}


# ----------------------------------------------------------------- torch oracle
def torch_alexnet(num_classes):
    m = tnn.Module()
    m.features = tnn.Sequential(
        tnn.Conv2d(3, 64, 11, 4, 2),
        tnn.ReLU(),
        tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 192, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(3, 2),
        tnn.Conv2d(192, 384, 3, padding=1),
        tnn.ReLU(),
        tnn.Conv2d(384, 256, 3, padding=1),
        tnn.ReLU(),
        tnn.Conv2d(256, 256, 3, padding=1),
        tnn.ReLU(),
        tnn.MaxPool2d(3, 2),
    )
    m.avgpool = tnn.AdaptiveAvgPool2d(6)
    m.classifier = tnn.Sequential(
        tnn.Dropout(),
        tnn.Linear(9216, 4096),
        tnn.ReLU(),
        tnn.Dropout(),
        tnn.Linear(4096, 4096),
        tnn.ReLU(),
        tnn.Linear(4096, num_classes),
    )
    m.forward = lambda x: m.classifier(m.avgpool(m.features(x)).flatten(1))
    return m


def torch_vgg(depth, bn, num_classes):
    layers, c = [], 3
    for v in VGG_CFG[depth]:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers += [tnn.Conv2d(c, v, 3, padding=1)] + ([tnn.BatchNorm2d(v)] if bn else []) + [tnn.ReLU()]
            c = v
    m = tnn.Module()
    m.features = tnn.Sequential(*layers)
    m.avgpool = tnn.AdaptiveAvgPool2d(7)
    m.classifier = tnn.Sequential(
        tnn.Linear(25088, 4096),
        tnn.ReLU(),
        tnn.Dropout(),
        tnn.Linear(4096, 4096),
        tnn.ReLU(),
        tnn.Dropout(),
        tnn.Linear(4096, num_classes),
    )
    return m


class TorchBlock(tnn.Module):
    def __init__(self, cin, planes, stride, bottleneck):
        super().__init__()
        exp = 4 if bottleneck else 1
        conv = lambda i, o, k, s=1: tnn.Conv2d(i, o, k, s, k // 2, bias=False)  # noqa: E731
        if bottleneck:  # V1.5: the stride sits on the 3x3 conv
            self.conv1, self.bn1 = conv(cin, planes, 1), tnn.BatchNorm2d(planes)
            self.conv2, self.bn2 = conv(planes, planes, 3, stride), tnn.BatchNorm2d(planes)
            self.conv3, self.bn3 = conv(planes, planes * 4, 1), tnn.BatchNorm2d(planes * 4)
        else:
            self.conv1, self.bn1 = conv(cin, planes, 3, stride), tnn.BatchNorm2d(planes)
            self.conv2, self.bn2 = conv(planes, planes, 3), tnn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes * exp:
            self.downsample = tnn.Sequential(
                conv(cin, planes * exp, 1, stride), tnn.BatchNorm2d(planes * exp)
            )

    def forward(self, x):
        out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        if hasattr(self, "conv3"):
            out = self.bn3(self.conv3(out.relu()))
        return (out + (x if self.downsample is None else self.downsample(x))).relu()


class TorchResNet(tnn.Module):
    def __init__(self, depth, num_classes):
        super().__init__()
        bottleneck, counts = RESNET_SPEC[depth]
        self.conv1, self.bn1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64)
        cin = 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(TorchBlock(cin, planes, 2 if j == 0 and i > 0 else 1, bottleneck))
                cin = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(cin, num_classes)

    def forward(self, x):
        x = tnn.functional.max_pool2d(self.bn1(self.conv1(x)).relu(), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


def torch_oracle(name, num_classes, device="meta"):
    """torchvision's architecture for ``name`` rebuilt with torch.nn, or None."""
    with torch.device(device):
        if name == "alexnet":
            return torch_alexnet(num_classes)
        if name.startswith("vgg"):
            return torch_vgg(int(name[3:5]), name.endswith("_bn"), num_classes)
        if name.startswith("resnet") and name[6:].isdigit() and int(name[6:]) in RESNET_SPEC:
            return TorchResNet(int(name[6:]), num_classes)
    return None


def shapes(state_dict):
    return OrderedDict((k, tuple(v.shape)) for k, v in state_dict.items())


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_torch_oracle_has_published_parameter_count(name):
    assert n_params(torch_oracle(name, 1000)) == PUBLISHED[name]


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("resnet20", {}, 269_722),
        ("resnet56", {}, 853_018),
        ("lenet5", {"in_channels": 1}, 61_706),
        ("tinyvgg", {}, 19_920),
    ],
)
def test_small_model_parameter_counts(name, kwargs, expected):
    assert n_params(models.create(name, num_classes=10, **kwargs)) == expected


@pytest.mark.parametrize("name, hw", [("resnet50", 32), ("alexnet", 64)])
def test_outputs_match_torch_oracle_with_its_weights(name, hw):
    torch.manual_seed(0)
    theirs = torch_oracle(name, 10, device="cpu").eval()
    with torch.no_grad():  # He-scaled weights keep the signal alive through every layer, and
        for m in theirs.modules():  # non-trivial BN statistics and affines test eval-mode BN too
            if isinstance(m, (tnn.Conv2d, tnn.Linear)):
                m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.01)
            elif isinstance(m, tnn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0.0, 0.1)
    ours = models.create(name, num_classes=10).eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 3, hw, hw)).astype(np.float32)
    with torch.no_grad():
        expected = theirs.forward(torch.from_numpy(x)).numpy()
    got = ours(cs.tensor(x)).numpy()
    assert np.abs(expected[0] - expected[1]).max() > 0.1 * np.abs(expected).max()  # input matters
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


# ------------------------------------------------ every registered model, built once each
IMAGENET = ("alexnet", "vgg", "resnet")  # families built at 1000 classes, as published
SMOKE_HW = {"alexnet": 64, "vgg": 32, "resnet": 32, "unet": 32}  # by family; else input_size
KNOWN_KEYS = {  # torchvision key -> shape
    "alexnet": {
        "features.0.weight": (64, 3, 11, 11),
        "features.10.bias": (256,),
        "classifier.1.weight": (4096, 9216),
        "classifier.6.bias": (1000,),
    },
    "vgg16": {
        "features.0.weight": (64, 3, 3, 3),
        "features.28.weight": (512, 512, 3, 3),
        "classifier.0.weight": (4096, 25088),
        "classifier.6.bias": (1000,),
    },
    "resnet18": {
        "conv1.weight": (64, 3, 7, 7),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer4.1.bn2.running_var": (512,),
        "fc.weight": (1000, 512),
    },
    "resnet50": {
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "fc.weight": (1000, 2048),
        "layer1.0.downsample.1.num_batches_tracked": (),
        "layer3.5.conv3.weight": (1024, 256, 1, 1),
        "layer4.2.bn3.running_mean": (2048,),
    },
}
KEY_COUNTS = {"alexnet": 16, "vgg16": 32, "resnet18": 122, "resnet50": 320}


@pytest.fixture(scope="module", params=models.list_models())
def zoo_model(request):
    """(name, info, model, num_classes); pytest groups the tests by model, so each is built once."""
    name = request.param
    info = models.model_info(name)
    k = 1000 if info.family in IMAGENET else 10
    yield name, info, models.create(name, num_classes=k), k


def test_registry_names_the_classifier_layer(zoo_model):
    name, info, model, k = zoo_model
    assert model.state_dict()[f"{info.classifier}.weight"].shape[0] == k, name


def test_registered_names():
    names = set(models.list_models())
    expected = {
        "alexnet",
        "tinyvgg",
        "unet",
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
        *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    }
    assert expected <= names


def test_forward_backward(zoo_model):
    name, info, model, k = zoo_model
    hw, c = SMOKE_HW.get(info.family, info.input_size[1]), info.input_size[0]
    shape = (2, c, hw, hw) if len(info.input_size) == 3 else (2, *info.input_size)  # images or (C, L) series
    x = cs.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    out = model(x)
    assert out.shape == ((2, k, hw, hw) if info.family == "unet" else (2, k))
    assert np.isfinite(out.numpy()).all()
    weights = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    (out * cs.tensor(weights)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} received no gradient"
        assert p.grad.shape == p.shape and np.isfinite(p.grad.numpy()).all(), pname
    assert any(np.abs(p.grad.numpy()).sum() > 0 for p in model.parameters())


def test_gradcam_layer_resolves_to_a_spatial_map(zoo_model):
    name, info, model, _ = zoo_model
    assert info.gradcam_layer, f"{name} has no gradcam_layer"
    layer = model.get_submodule(info.gradcam_layer)
    if info.family in ("alexnet", "vgg"):  # the last ReLU, just before the final max-pool
        assert isinstance(layer, nn.ReLU) and isinstance(model.features[-1], nn.MaxPool2d)
        assert info.gradcam_layer == f"features.{len(model.features) - 2}"
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    hw = SMOKE_HW.get(info.family, info.input_size[1])
    one = (1, info.input_size[0], hw, hw) if len(info.input_size) == 3 else (1, *info.input_size)
    with cs.no_grad():
        model.eval()(cs.zeros(*one))
    handle.remove(), model.train()
    assert len(seen) == 1 and len(seen[0]) == len(one), f"{name}: {info.gradcam_layer} gave {seen}"


def test_published_parameter_count_and_torchvision_state_dict(zoo_model):
    name, info, model, k = zoo_model
    theirs = torch_oracle(name, k)
    if theirs is None:
        pytest.skip(f"no torchvision counterpart for {name}")
    assert n_params(model) == PUBLISHED[name]
    sd = shapes(model.state_dict())
    assert sd == shapes(theirs.state_dict())  # same keys, order and shapes
    for key, shape in KNOWN_KEYS.get(name, {}).items():
        assert sd[key] == shape, key
    if name in KEY_COUNTS:
        assert len(sd) == KEY_COUNTS[name]


def test_torchvision_initialisation(zoo_model):
    name, info, model, _ = zoo_model
    if info.family not in ("vgg", "resnet"):
        pytest.skip(f"{name} keeps PyTorch's default layer initialisation")
    for m in model.modules():  # the first 64 output rows suffice for the statistics
        if isinstance(m, nn.Conv2d):  # kaiming_normal_(mode='fan_out', nonlinearity='relu')
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            assert abs(m.weight.numpy()[:64].std() / np.sqrt(2.0 / fan_out) - 1) < 0.1
            assert m.bias is None or not m.bias.numpy().any()
        elif isinstance(m, nn.BatchNorm2d):
            assert (m.weight.numpy() == 1).all() and not m.bias.numpy().any()
        elif isinstance(m, nn.Linear) and info.family == "vgg":  # N(0, 0.01^2), zero bias
            assert abs(m.weight.numpy()[:64].std() / 0.01 - 1) < 0.05 and not m.bias.numpy().any()


def test_resnet_zero_init_residual():
    model = models.create("resnet18", zero_init_residual=True)
    last_bns = [m.bn2 for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(last_bns) == 8 and all(not bn.weight.numpy().any() for bn in last_bns)


def test_metadata(zoo_model):
    name, info, _, _ = zoo_model
    assert info.citation and info.family
    assert len(info.input_size) == (2 if info.family == "ts1d" else 3)  # (C, L) series or (C, H, W)
    if info.family in ("alexnet", "vgg", "resnet"):
        assert info.input_size == (3, 224, 224)
        assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)


# ------------------------------------------------ registry errors, TinyVGG, U-Net
def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet17'.*valid names:.*alexnet.*unet.*vgg16"):
        models.create("resnet17")


def test_tinyvgg_feature_map_matches_cnn_explainer():
    model = models.create("tinyvgg")
    assert model.features(cs.zeros(1, 3, 64, 64)).shape == (1, 10, 13, 13)
    assert model.classifier.in_features == 1690
    with pytest.raises(ValueError, match="too small"):
        models.create("tinyvgg", input_size=15)


@pytest.mark.parametrize("depth, hw", [(2, (12, 20)), (4, (16, 32))])
def test_unet_shapes(depth, hw):
    model = models.create("unet", num_classes=3, in_channels=2, base=4, depth=depth)
    assert model(cs.randn(1, 2, *hw)).shape == (1, 3, *hw)
    assert model.get_submodule("bottleneck.conv2").out_channels == 4 * 2**depth


@pytest.mark.parametrize("hw", [(30, 32), (32, 36)])
def test_unet_rejects_sizes_not_divisible_by_2_to_the_depth(hw):
    model = models.create("unet", num_classes=2, base=4, depth=3)
    with pytest.raises(ValueError, match=rf"divisible by 2\*\*depth = 8 .*got {hw[0]}x{hw[1]}"):
        model(cs.randn(1, 1, *hw))
