"""CIFAR ResNets (He et al. 2015, section 4.2): resnet20/32/44/56/110 with option-A shortcuts.

Three stages of n basic blocks (16, 32, 64 filters) on 32x32 input, 6n+2 layers.
Option A: when a block halves the map and doubles the channels, the identity
shortcut subsamples by 2 and zero-pads the new channels, so shortcuts add no
parameters (ResNet-20: 269,722 parameters).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import nn
from ..autograd.tensor import Tensor
from ..nn import functional as F
from ..nn.functional import _fused as fused
from .registry import register


class ShortcutA(nn.Module):
    """Identity shortcut for a downsampling block: x[:, :, ::s, ::s] with zero channels appended.

    Shape:
        (N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s]
        extra = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlockA(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU; ``residual=False`` drops the
    shortcut (the paper's "plain" counterpart: same layers, no identity path)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module | None
        if not residual:
            self.shortcut = None
        elif stride != 1 or in_channels != channels:
            self.shortcut = ShortcutA(in_channels, channels, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # relu(bn1(conv1(.))), bn2(conv2(.)) and relu(. + .): one pass each in plain inference
        out = fused.conv_bn_relu(self.conv1, self.bn1, self.relu, x)
        out = fused.conv_bn_relu(self.conv2, self.bn2, None, out)
        if self.shortcut is None:
            return self.relu(out)
        return fused.add_relu(self.relu, out, self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 images with ``depth = 6n + 2`` layers.

    Args:
        depth (int, default 20): 6n+2 (8, 14, 20, 32, 44, 56, 110, ...).
        num_classes (int, default 10); in_channels (int, default 3).
        residual (bool, default True): False builds the plain twin (He et al. 2015, Fig. 1 and
            Table 6): the same layers and widths without the identity shortcuts.
        widths (tuple of 3 ints, default (16, 32, 64)): filters of the three stages.

    Shape:
        (N, in_channels, 32, 32) -> (N, num_classes).
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        residual: bool = True,
        widths: tuple = (16, 32, 64),
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"CifarResNet: depth must be 6n+2 with n >= 1 (8, 20, 32, 44, 56, 110), got {depth}"
            )
        if len(widths) != 3 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"CifarResNet: widths must be 3 positive ints, got {widths!r}")
        n = (depth - 2) // 6
        w1, w2, w3 = widths
        self.residual = residual
        self.conv1 = nn.Conv2d(in_channels, w1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(w1, w1, n, 1, residual)
        self.layer2 = self._stage(w1, w2, n, 2, residual)
        self.layer3 = self._stage(w2, w3, n, 2, residual)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w3, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_channels, channels, blocks, stride, residual=True):
        layers = [BasicBlockA(in_channels, channels, stride, residual)]
        layers += [BasicBlockA(channels, channels, 1, residual) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = fused.conv_bn_relu(self.conv1, self.bn1, self.relu, x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


_CITATION = (
    "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 "
    "(arXiv:1512.03385), CIFAR-10 networks of section 4.2, option A."
)
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _register(depth: int) -> Callable[..., CifarResNet]:
    @register(
        f"resnet{depth}",
        input_size=(3, 32, 32),
        mean=_CIFAR_MEAN,
        std=_CIFAR_STD,
        gradcam_layer="layer3",
        family="resnet_cifar",
        classifier="fc",
        citation=_CITATION,
    )
    def build(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
        return CifarResNet(depth, num_classes, in_channels)

    return build


for _depth in (20, 32, 44, 56, 110):
    _register(_depth)
