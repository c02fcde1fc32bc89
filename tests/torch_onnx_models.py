"""Hand-written torch models for the ONNX import tests: a ResNet-18, a MobileNet-V2-style block
stack (depthwise convs, ReLU6, inverted residuals) and a SqueezeNet-style model (Fire modules'
Concat, ceil-mode max pooling), plus their export with torch's TorchScript exporter."""

from __future__ import annotations

import warnings

import torch

tnn = torch.nn


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.relu = tnn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(
                tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(tnn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        widths, cin = [64, 128, 256, 512], 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", tnn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(tnn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = tnn.Sequential(
            tnn.Conv2d(cin, hidden, 1, bias=False),
            tnn.BatchNorm2d(hidden),
            tnn.ReLU6(),
            tnn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            tnn.BatchNorm2d(hidden),
            tnn.ReLU6(),
            tnn.Conv2d(hidden, cout, 1, bias=False),
            tnn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV2Style(tnn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 16, 3, 2, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU6())
        self.blocks = tnn.Sequential(
            InvertedResidual(16, 16, 1, 1),
            InvertedResidual(16, 24, 2, 6),
            InvertedResidual(24, 24, 1, 6),
            InvertedResidual(24, 32, 2, 6),
            InvertedResidual(32, 32, 1, 6),
        )
        self.head = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(32, num_classes))

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


class Fire(tnn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = tnn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = tnn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = tnn.Conv2d(squeeze, expand, 3, padding=1)
        self.relu = tnn.ReLU()

    def forward(self, x):
        x = self.relu(self.squeeze(x))
        return torch.cat([self.relu(self.expand1x1(x)), self.relu(self.expand3x3(x))], 1)


class SqueezeNetStyle(tnn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(3, 32, 3, 2),
            tnn.ReLU(),
            tnn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(32, 8, 16),
            Fire(32, 8, 16),
            tnn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(32, 12, 24),
        )
        self.classifier = tnn.Sequential(
            tnn.Dropout(0.5), tnn.Conv2d(48, num_classes, 1), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x):
        x = self.classifier(self.features(x))
        return x.view(x.size(0), -1)  # the Shape/Gather/Unsqueeze/Concat/Reshape pattern


TORCH_MODELS = {
    "resnet18": ResNet18,
    "mobilenet_v2_style": MobileNetV2Style,
    "squeezenet_style": SqueezeNetStyle,
}


def make_torch_model(name: str, seed: int = 0):
    """The model in eval mode with non-trivial batch-norm statistics and affine parameters."""
    torch.manual_seed(seed)
    model = TORCH_MODELS[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def torch_export(model, x, path, **kwargs):
    """torch.onnx.export with the TorchScript exporter (dynamo=False), a dynamic batch dimension."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            **kwargs,
        )
