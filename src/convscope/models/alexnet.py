"""AlexNet as torchvision builds it: the single-tower variant of Krizhevsky's "one weird trick".

The original AlexNet (Krizhevsky, Sutskever, Hinton, NeurIPS 2012) split its filters over two
GPUs (96-256-384-384-256). torchvision, and so convscope, uses the single-GPU variant of
Krizhevsky 2014 (arXiv:1404.5997) with 64-192-384-256-256 filters, plus an adaptive average
pool to 6x6 so any input of at least 63x63 pixels works. State-dict keys match torchvision's
(``features.0.weight`` ... ``classifier.6.bias``), so its weights load unchanged.
"""

from __future__ import annotations

from .. import nn
from ..autograd.tensor import Tensor
from .registry import register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class AlexNet(nn.Module):
    """AlexNet: five convolutions and three fully connected layers.

    Layers (torchvision's indices)::

        features   0 conv 64@11x11 s4 p2, 1 ReLU, 2 maxpool 3/2,
                   3 conv 192@5x5 p2,     4 ReLU, 5 maxpool 3/2,
                   6 conv 384@3x3 p1,     7 ReLU,
                   8 conv 256@3x3 p1,     9 ReLU,
                  10 conv 256@3x3 p1,    11 ReLU, 12 maxpool 3/2
        avgpool    AdaptiveAvgPool2d(6)
        classifier 0 Dropout, 1 Linear(9216, 4096), 2 ReLU,
                   3 Dropout, 4 Linear(4096, 4096), 5 ReLU, 6 Linear(4096, num_classes)

    Args:
        num_classes (int, default 1000): classifier outputs.
        in_channels (int, default 3): input channels.
        dropout (float, default 0.5): dropout probability before the first two linears.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes) for H, W >= 63 (224 in the paper:
        224 -> 55 -> 27 -> 27 -> 13 -> 13 -> 6 before the average pool).
        61,100,840 parameters at 1000 classes and 3 input channels.

    Example:
        >>> AlexNet(10)(convscope.randn(1, 3, 224, 224)).shape
        (1, 10)
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.flatten = nn.Flatten()  # no state: keys stay torchvision's
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        # torchvision keeps PyTorch's default layer initialisation for AlexNet

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(self.flatten(x))


@register(
    "alexnet",
    input_size=(3, 224, 224),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    gradcam_layer="features.11",
    family="alexnet",
    classifier="classifier.6",
    citation="Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep Convolutional "
    "Neural Networks. NeurIPS 2012; single-tower variant from Krizhevsky. One weird "
    "trick for parallelizing convolutional neural networks. arXiv:1404.5997, 2014.",
)
def alexnet(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> AlexNet:
    """AlexNet (torchvision's layout); see :class:`AlexNet`."""
    return AlexNet(num_classes, in_channels, dropout)
