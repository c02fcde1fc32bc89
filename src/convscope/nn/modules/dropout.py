"""Dropout and Upsample layers (torch.nn names and defaults)."""

from __future__ import annotations

from collections.abc import Sequence

from ...autograd.tensor import Tensor
from .. import functional as F
from ..common_types import SizeArg
from ..functional.resample import interpolate_impl
from .module import Module


class Dropout(Module):
    """Zero elements with probability p while training (scaling the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Upsample(Module):
    """Resize feature maps by 'nearest', 'linear' (3-D) or 'bilinear' (4-D) interpolation (no
    parameters); arguments as :func:`convscope.nn.functional.interpolate`.

    Example:
        >>> nn.Upsample(scale_factor=2)(convscope.randn(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
    """

    def __init__(
        self,
        size: SizeArg | None = None,
        scale_factor: float | Sequence[float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("nearest", "linear", "bilinear"):
            raise ValueError(f"Upsample: mode must be 'nearest', 'linear' or 'bilinear', got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size or scale_factor")
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return interpolate_impl(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            self._layer_name(),
            self.recompute_scale_factor,
        )

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
