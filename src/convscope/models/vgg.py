"""VGG-11/13/16/19, with and without batch norm, as torchvision builds them.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 (arXiv:1409.1556): configurations A (11 layers), B (13), D (16) and E (19) of
3x3 convolutions (padding 1) and 2x2/2 max-pools. The ``_bn`` variants put a BatchNorm2d
after every convolution (Ioffe & Szegedy 2015), as torchvision does. Module indices inside
``features`` and ``classifier`` equal torchvision's, so ``features.28.weight`` (VGG-16) or
``classifier.6.bias`` name the same tensors and torchvision weights load unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import nn
from ..autograd.tensor import Tensor
from .alexnet import IMAGENET_MEAN, IMAGENET_STD
from .registry import register

# "M" is a 2x2/2 max-pool; numbers are the output channels of a 3x3 convolution
CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


def make_features(
    config: Sequence[int | str], in_channels: int = 3, batch_norm: bool = False
) -> nn.Sequential:
    """The convolutional trunk: conv [BN] ReLU per number in ``config``, a max-pool per "M".

    Shape:
        (N, in_channels, H, W) -> (N, 512, H // 32, W // 32) for the standard configs.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for v in config:
        if isinstance(v, str):  # "M"
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: a ``features`` trunk, an adaptive 7x7 average pool and a three-layer classifier.

    classifier: 0 Linear(25088, 4096), 1 ReLU, 2 Dropout, 3 Linear(4096, 4096), 4 ReLU,
    5 Dropout, 6 Linear(4096, num_classes).

    Args:
        features (Sequential): from :func:`make_features`.
        num_classes (int, default 1000): classifier outputs.
        dropout (float, default 0.5): dropout probability in the classifier.
        init_weights (bool, default True): torchvision's initialisation: convolutions
            kaiming_normal_(mode='fan_out', nonlinearity='relu') with zero bias, BatchNorm
            weight 1 and bias 0, linears N(0, 0.01^2) with zero bias.

    Shape:
        (N, C_in, H, W) -> (N, num_classes) for H, W >= 32 (the five pools need 32 pixels).
        VGG-16 has 138,357,544 parameters at 1000 classes and 3 input channels.

    Example:
        >>> vgg11(num_classes=10)(convscope.randn(1, 3, 32, 32)).shape
        (1, 10)
    """

    def __init__(
        self,
        features: nn.Sequential,
        num_classes: int = 1000,
        dropout: float = 0.5,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()  # no state: keys stay torchvision's
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(self.flatten(x))


_CITATION = (
    "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition. ICLR 2015 (arXiv:1409.1556)"
)
_BN_CITATION = "; batch norm: Ioffe, Szegedy. Batch Normalization. ICML 2015"


def last_relu_index(depth: int, batch_norm: bool) -> int:
    """Index in ``features`` of the last ReLU (the one before the final max-pool)."""
    per_conv = 3 if batch_norm else 2
    config = CONFIGS[depth]
    n_conv = sum(v != "M" for v in config)
    n_pool = len(config) - n_conv
    return n_conv * per_conv + n_pool - 2  # the final pool is the last module


def _register(depth: int, batch_norm: bool) -> Callable[..., VGG]:
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"

    @register(
        name,
        input_size=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        gradcam_layer=f"features.{last_relu_index(depth, batch_norm)}",
        family="vgg",
        classifier="classifier.6",
        citation=_CITATION + (_BN_CITATION if batch_norm else "") + ".",
    )
    def build(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> VGG:
        return VGG(make_features(CONFIGS[depth], in_channels, batch_norm), num_classes, dropout)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"VGG-{depth}{' with batch norm' if batch_norm else ''} (torchvision layout)."
    return build


for _depth in CONFIGS:
    for _bn in (False, True):
        globals()[f"vgg{_depth}{'_bn' if _bn else ''}"] = _register(_depth, _bn)
