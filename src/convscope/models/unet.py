"""A small U-Net for semantic segmentation (Ronneberger, Fischer, Brox, MICCAI 2015).

Fully convolutional encoder-decoder: the encoder halves the map ``depth`` times with 2x2
max-pools, the decoder doubles it back (2x2/2 transposed convolutions, or bilinear upsampling followed by
a 3x3 convolution: ``upsample='bilinear'``) and concatenates
the encoder's map of the same size (the skip connection) before each double convolution.
Unlike the paper's unpadded 3x3 convolutions (which shrink the output and need cropped
skips), this version pads them by 1 and adds batch norm, so the output has the input's
height and width — the common modern form.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import cat, nn
from ..autograd.tensor import Tensor
from .registry import register


class DoubleConv(nn.Sequential):
    """[conv 3x3 (padding 1, no bias) - BatchNorm - ReLU] twice.

    Shape:
        (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)),
                    ("bn1", nn.BatchNorm2d(out_channels)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)),
                    ("bn2", nn.BatchNorm2d(out_channels)),
                    ("relu2", nn.ReLU()),
                ]
            )
        )


UPSAMPLING = ("transposed", "bilinear")


def up_block(in_channels: int, out_channels: int, mode: str) -> nn.Module:
    """2x upsampling from ``in_channels`` to ``out_channels``.

    'transposed': ConvTranspose2d(k=2, s=2) (learned, each input pixel paints a 2x2 patch);
    'bilinear': Upsample(scale_factor=2, bilinear) then Conv2d 3x3 (padding 1).

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, 2H, 2W).
    """
    if mode == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
    return nn.Sequential(
        OrderedDict(
            [
                ("resize", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
                ("conv", nn.Conv2d(in_channels, out_channels, 3, padding=1)),
            ]
        )
    )


class UNet(nn.Module):
    """U-Net with ``depth`` down/up steps and ``base * 2**i`` channels at level ``i``.

    Modules: ``encoder[i]`` (DoubleConv at level i, i < depth), ``pool`` (2x2 max-pool),
    ``bottleneck`` (DoubleConv at level depth), ``upsample[j]`` (ConvTranspose2d k=2 s=2, or
    bilinear Upsample + Conv2d 3x3, from level depth-j to depth-j-1), ``decoder[j]``
    (DoubleConv over the concatenation of the upsampled map and the skip), ``head`` (1x1 conv
    to num_classes logits per pixel).

    Args:
        num_classes (int, default 2): output channels (classes per pixel).
        in_channels (int, default 1): input channels.
        base (int, default 16): channels at the first level.
        depth (int, default 3): number of 2x downsamplings.
        upsample (str, default 'transposed'): 'transposed' or 'bilinear' (see :func:`up_block`).

    Shape:
        (N, in_channels, H, W) -> (N, num_classes, H, W), with H and W divisible by 2**depth.

    Raises:
        ValueError: in ``__init__`` for a non-positive base or depth or an unknown upsample;
            in ``forward`` when the input is not 4-D or H or W is not divisible by 2**depth.

    Example:
        >>> UNet(2, 1)(convscope.randn(1, 1, 64, 64)).shape
        (1, 2, 64, 64)
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 1,
        base: int = 16,
        depth: int = 3,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        for arg, value in (("base", base), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"UNet: {arg} must be a positive int, got {value!r}")
        if upsample not in UPSAMPLING:
            raise ValueError(f"UNet: upsample must be 'transposed' or 'bilinear', got {upsample!r}")
        self.depth, self.upsample_mode = depth, upsample
        widths = [base * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.encoder.append(DoubleConv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in range(depth - 1, -1, -1):
            self.upsample.append(up_block(widths[level + 1], widths[level], upsample))
            self.decoder.append(DoubleConv(2 * widths[level], widths[level]))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"UNet: expected a 4-D input (N, C_in, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        factor = 2**self.depth
        if h % factor or w % factor:
            raise ValueError(
                f"UNet: input height and width must be divisible by 2**depth = {factor} "
                f"(depth {self.depth}), got {h}x{w}; pad or resize the input, e.g. to "
                f"{-(-h // factor) * factor}x{-(-w // factor) * factor}"
            )
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.upsample, self.decoder, reversed(skips), strict=True):
            x = block(cat([skip, up(x)], dim=1))  # (N, 2 * C_level, H_level, W_level)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, upsample={self.upsample_mode!r}"


@register(
    "unet",
    input_size=(1, 64, 64),
    task="segment",
    gradcam_layer="bottleneck",
    family="unet",
    classifier="head",
    # chosen on mnist-seg (the README's segmentation section has the measured run); SGD at the
    # small classifiers' lr learns which digit a stroke belongs to far later
    train_defaults=[((None, None, None), {"optimizer": "adam", "lr": 2e-3, "epochs": 10})],
    citation="Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation. MICCAI 2015 (arXiv:1505.04597).",
)
def unet(
    num_classes: int = 2, in_channels: int = 1, base: int = 16, depth: int = 3, upsample: str = "transposed"
) -> UNet:
    """A small U-Net; see :class:`UNet`. Output: (N, num_classes, H, W)."""
    return UNet(num_classes, in_channels, base, depth, upsample)
