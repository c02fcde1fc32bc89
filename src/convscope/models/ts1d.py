"""1-D CNNs for time-series classification (Wang, Yan, Oates, IJCNN 2017): FCN and ResNet.

Both read (N, C_in, L) series of any length L (convolutions are 'same'-padded and a global
average pool ends the feature extractor), so one trained model classifies series of any length
and its last convolution's maps give class activation maps along time.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from .registry import register

_CITATION = (
    "Wang, Yan, Oates. Time Series Classification from Scratch with Deep Neural Networks: "
    "A Strong Baseline. IJCNN 2017 (arXiv:1611.06455)."
)
# Adam as the paper (lr 1e-3), small batches for the archive's small training sets, and a budget
# that fits GunPoint and ItalyPowerDemand in about a CPU-minute (the README's UCR table)
_SERIES_DEFAULTS = [((None, None), {"optimizer": "adam", "lr": 1e-3, "batch_size": 16, "epochs": 150})]
# what the zoo records of both series models (inputs (C, L); CAM on the last block)
_SERIES_MODEL: dict = dict(
    input_size=(1, 150),
    gradcam_layer="features",
    family="ts1d",
    citation=_CITATION,
    classifier="fc",
    train_defaults=_SERIES_DEFAULTS,
)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, relu: bool = True) -> nn.Sequential:
    """Conv1d (padding 'same', no bias) - BatchNorm1d [- ReLU].

    Shape:
        (N, C_in, L) -> (N, C_out, L).
    """
    layers = [
        ("conv", nn.Conv1d(in_channels, out_channels, kernel_size, padding="same", bias=False)),
        ("bn", nn.BatchNorm1d(out_channels)),
    ]
    if relu:
        layers.append(("relu", nn.ReLU()))
    return nn.Sequential(OrderedDict(layers))


class FCN1d(nn.Module):
    """The fully convolutional network: three conv blocks (128, 256, 128 filters; kernels 8, 5, 3),
    global average pooling, a linear classifier.

    Args:
        num_classes (int, default 2); in_channels (int, default 1).

    Shape:
        (N, in_channels, L) -> (N, num_classes).

    Example:
        >>> FCN1d(2, 1)(convscope.randn(4, 1, 150)).shape
        (4, 2)
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("block1", conv_bn_relu(in_channels, 128, 8)),
                    ("block2", conv_bn_relu(128, 256, 5)),
                    ("block3", conv_bn_relu(256, 128, 3)),
                ]
            )
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


class ResidualBlock1d(nn.Module):
    """Three conv blocks (kernels 8, 5, 3) plus a shortcut (1x1 conv + BN when the width changes,
    BN otherwise), then ReLU.

    Shape:
        (N, C_in, L) -> (N, C_out, L).
    """

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels, channels, 8)
        self.conv2 = conv_bn_relu(channels, channels, 5)
        self.conv3 = conv_bn_relu(channels, channels, 3, relu=False)
        self.shortcut: nn.Module
        if in_channels != channels:
            self.shortcut = nn.Sequential(
                OrderedDict(
                    [
                        ("conv", nn.Conv1d(in_channels, channels, 1, bias=False)),
                        ("bn", nn.BatchNorm1d(channels)),
                    ]
                )
            )
        else:
            self.shortcut = nn.BatchNorm1d(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


class ResNet1d(nn.Module):
    """The time-series ResNet: residual blocks of 64, 128, 128 filters, global average pooling,
    a linear classifier.

    Args:
        num_classes (int, default 2); in_channels (int, default 1).

    Shape:
        (N, in_channels, L) -> (N, num_classes).
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("block1", ResidualBlock1d(in_channels, 64)),
                    ("block2", ResidualBlock1d(64, 128)),
                    ("block3", ResidualBlock1d(128, 128)),
                ]
            )
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


@register("fcn1d", **_SERIES_MODEL)
def fcn1d(num_classes=2, in_channels=1):
    """Wang et al.'s FCN for time series; see :class:`FCN1d`."""
    return FCN1d(num_classes, in_channels)


@register("resnet1d", **_SERIES_MODEL)
def resnet1d(num_classes=2, in_channels=1):
    """Wang et al.'s ResNet for time series; see :class:`ResNet1d`."""
    return ResNet1d(num_classes, in_channels)
