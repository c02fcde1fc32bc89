"""Type aliases of the layer and function arguments (as ``torch.nn.common_types``).

A size argument is one int for every spatial axis or a sequence with one int per axis;
padding may also be ``'valid'`` or ``'same'`` where the convolution allows it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: One int for every axis, or one per axis (``kernel_size=3`` or ``kernel_size=(3, 5)``).
SizeArg = int | Sequence[int]
#: A convolution's padding: a size, or ``'valid'`` / ``'same'``.
PaddingArg = int | Sequence[int] | str
#: An optional size (pooling's stride defaults to the kernel size; adaptive outputs keep an axis).
OptSizeArg = int | Sequence[int | None] | None

__all__ = ["SizeArg", "PaddingArg", "OptSizeArg"]
