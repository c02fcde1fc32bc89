"""TinyVGG, the network CNN Explainer visualises (Wang et al., IEEE VIS 2020).

Two blocks of [conv 10@3x3, ReLU, conv 10@3x3, ReLU, max-pool 2x2] on 64x64x3 images, no
padding, then flatten and one linear layer: 64 -> 62 -> 60 -> 30 -> 28 -> 26 -> 13, so the
classifier sees 10 * 13 * 13 = 1690 features. CNN Explainer trained it on 10 Tiny ImageNet
classes with pixels scaled to [0, 1] (hence mean 0, std 1). Layer names follow its
interface: conv_1_1, relu_1_1, ..., max_pool_2.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .. import nn
from ..autograd.tensor import Tensor
from ..kernels.geometry import conv_output_size
from .registry import register


class TinyVGG(nn.Module):
    """CNN Explainer's TinyVGG.

    Args:
        num_classes (int, default 10): classifier outputs.
        in_channels (int, default 3): input channels.
        input_size (int or (H, W), default 64): the classifier is sized from it.
        width (int, default 10): filters of every convolution.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes); the features end at
        (N, width, ((H - 4) // 2 - 4) // 2, ...) = (N, 10, 13, 13) for 64x64 input.
        19,920 parameters at the defaults.

    Raises:
        ValueError: when ``input_size`` is too small for the two blocks (below 16 pixels).

    Example:
        >>> TinyVGG()(convscope.randn(1, 3, 64, 64)).shape
        (1, 10)
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int | Sequence[int] = 64,
        width: int = 10,
    ) -> None:
        super().__init__()
        h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for b in (1, 2):
            for c in (1, 2):
                layers[f"conv_{b}_{c}"] = nn.Conv2d(channels, width, 3)
                layers[f"relu_{b}_{c}"] = nn.ReLU()
                channels = width
                h, w = conv_output_size(h, 3), conv_output_size(w, 3)
            layers[f"max_pool_{b}"] = nn.MaxPool2d(2)
            h, w = conv_output_size(h, 2, 2), conv_output_size(w, 2, 2)
        if h < 1 or w < 1:
            raise ValueError(
                f"TinyVGG: input_size {input_size} is too small for two blocks of "
                f"two 3x3 convolutions and a 2x2 pool; expected at least 16x16"
            )
        self.features = nn.Sequential(layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width * h * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register(
    "tinyvgg",
    input_size=(3, 64, 64),
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    gradcam_layer="features.relu_2_2",
    family="tinyvgg",
    classifier="classifier",
    citation="Wang, Turko, Shaikh, Park, Das, Hohman, Kahng, Chau. CNN Explainer: Learning "
    "Convolutional Neural Networks with Interactive Visualization. IEEE VIS 2020 "
    "(IEEE TVCG 27(2), 2021).",
)
def tinyvgg(
    num_classes: int = 10, in_channels: int = 3, input_size: int | Sequence[int] = 64, width: int = 10
) -> TinyVGG:
    """TinyVGG; see :class:`TinyVGG`."""
    if not isinstance(input_size, int):
        input_size = tuple(input_size)
    return TinyVGG(num_classes, in_channels, input_size, width)
