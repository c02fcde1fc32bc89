"""The 'simple' CNN: two conv-ReLU-pool stages and a fully connected head, sized to the input."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .. import nn
from ..autograd.tensor import Tensor
from ..kernels.geometry import conv_output_size
from .registry import register


class SimpleCNN(nn.Module):
    """conv(3x3, pad 1)-ReLU-maxpool(2) twice, then FC hidden - ReLU - dropout - FC num_classes.

    Args:
        num_classes (int); in_channels (int); input_size ((H, W), default (28, 28)): the FC
        layer is sized from it; width (int, default 32): filters of the first conv (the second
        has twice as many); hidden (int, default 128).

    Shape:
        (N, in_channels, H, W) -> (N, num_classes).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | Sequence[int] = (28, 28),
        width: int = 32,
        hidden: int = 128,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, width, 3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2)),
                    ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2)),
                ]
            )
        )
        for _ in range(2):
            h, w = conv_output_size(h, 2, 2), conv_output_size(w, 2, 2)
        if h < 1 or w < 1:
            raise ValueError(
                f"SimpleCNN: input_size {input_size} is too small for two 2x2 poolings; expected at least 4x4"
            )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", nn.Linear(2 * width * h * w, hidden)),
                    ("relu3", nn.ReLU()),
                    ("drop", nn.Dropout(dropout)),
                    ("fc2", nn.Linear(hidden, num_classes)),
                ]
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register(
    "simple",
    input_size=(1, 28, 28),
    gradcam_layer="features.relu2",
    family="simple",
    classifier="classifier.fc2",
    citation="convscope's teaching CNN (conv-ReLU-pool x2 + FC), after CS231n's examples.",
)
def simple(
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | Sequence[int] = (28, 28),
    width: int = 32,
    hidden: int = 128,
    dropout: float = 0.25,
) -> SimpleCNN:
    return SimpleCNN(
        num_classes,
        in_channels,
        tuple(input_size) if not isinstance(input_size, int) else input_size,
        width,
        hidden,
        dropout,
    )
