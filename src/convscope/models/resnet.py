"""ImageNet ResNets (resnet18/34/50/101/152) as torchvision builds them (ResNet V1.5).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), Table 1. Like torchvision, the bottleneck block downsamples with the
stride of its 3x3 convolution rather than the first 1x1 ("ResNet V1.5"; Goyal et al. 2017,
arXiv:1706.02677), and projection shortcuts (option B) are a 1x1 convolution plus BatchNorm
in ``downsample``. State-dict keys (``conv1.weight``, ``layer1.0.downsample.0.weight``,
``layer4.1.bn2.running_var``, ``fc.bias`` ...) equal torchvision's.

The CIFAR ResNets (resnet20 ... resnet110) live in :mod:`convscope.models.resnet_cifar`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import nn
from ..autograd.tensor import Tensor
from .alexnet import IMAGENET_MEAN, IMAGENET_STD
from .registry import register


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (ResNet-18/34).

    Shape:
        (N, C_in, H, W) -> (N, planes, ceil(H/stride), ceil(W/stride)).
    """

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1(4x)-BN, plus the shortcut, then ReLU.

    The stride sits on the 3x3 convolution (V1.5), as in torchvision.

    Shape:
        (N, C_in, H, W) -> (N, 4 * planes, ceil(H/stride), ceil(W/stride)).
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ImageNet ResNet: 7x7/2 stem, 3x3/2 max-pool, four stages, global average pool, fc.

    Args:
        block (BasicBlock or Bottleneck): the residual block type.
        layers (list of 4 ints): blocks per stage, e.g. [2, 2, 2, 2] for ResNet-18.
        num_classes (int, default 1000): fc outputs.
        in_channels (int, default 3): input channels.
        zero_init_residual (bool, default False): start each block's last BN weight at 0, so
            every block begins as the identity (Goyal et al. 2017), as torchvision offers.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes); the stages see H/4, H/4, H/8, H/16, H/32.
        Parameters at 1000 classes: ResNet-18 11,689,512; ResNet-50 25,557,032.

    Example:
        >>> resnet18(num_classes=10)(convscope.randn(1, 3, 64, 64)).shape
        (1, 10)
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must list 4 block counts, got {layers!r}")
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_stage(block, 64, layers[0], 1)
        self.layer2 = self._make_stage(block, 128, layers[1], 2)
        self.layer3 = self._make_stage(block, 256, layers[2], 2)
        self.layer4 = self._make_stage(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()  # no state: keys stay torchvision's
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # torchvision's initialisation (fc keeps PyTorch's default Linear init)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_stage(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        out_channels = planes * block.expansion
        if stride != 1 or self.in_planes != out_channels:
            downsample = nn.Sequential(
                conv1x1(self.in_planes, out_channels, stride), nn.BatchNorm2d(out_channels)
            )
        layers = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = out_channels
        layers += [block(out_channels, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


_CITATION = (
    "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 "
    "(arXiv:1512.03385); torchvision's V1.5 (stride on the bottleneck's 3x3 conv)."
)

SPECS: dict[int, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def _register(depth: int) -> Callable[..., ResNet]:
    name = f"resnet{depth}"

    @register(
        name,
        input_size=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        gradcam_layer="layer4",
        family="resnet",
        classifier="fc",
        citation=_CITATION,
    )
    def build(num_classes: int = 10, in_channels: int = 3, zero_init_residual: bool = False) -> ResNet:
        block, layers = SPECS[depth]
        return ResNet(block, layers, num_classes, in_channels, zero_init_residual)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"ResNet-{depth} (torchvision's V1.5 layout); see :class:`ResNet`."
    return build


for _depth in SPECS:
    globals()[f"resnet{_depth}"] = _register(_depth)
