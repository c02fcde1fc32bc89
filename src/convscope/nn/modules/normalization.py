"""BatchNorm1d and BatchNorm2d (torch.nn names, arguments, defaults and state_dict keys)."""

from __future__ import annotations

import numpy as np

from ...autograd.tensor import DTypeLike, Tensor
from .. import init
from ..functional._checks import check_ndim, check_tensor
from ..functional.normalization import batch_norm_impl
from ..parameter import Parameter
from .module import Module


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = (2,)
    _layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: str | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(
                f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}"
            )
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = np.dtype(dtype or np.float32)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return self.forward_relu(input, relu=False)

    def forward_relu(self, input: Tensor, relu: bool = True) -> Tensor:
        """``relu(self(input))`` with the ReLU fused into training's batch-norm op (one pass less
        each way); what :mod:`convscope.nn.functional._fused` calls for a BatchNorm2d followed by
        a plain ReLU. Forward hooks do not run (the caller checks there are none)."""
        name = self._layer_name()
        check_tensor(input, name)
        check_ndim(input, self._ndims, name, self._layout)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch = self.training or not self.track_running_stats
        track = self.training and self.track_running_stats
        return batch_norm_impl(
            input,
            self.running_mean if track or not use_batch else None,
            self.running_var if track or not use_batch else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
            name,
            relu,
        )

    def extra_repr(self) -> str:
        text = f"{self.num_features}"
        if self.eps != 1e-5:
            text += f", eps={self.eps}"
        if self.momentum != 0.1:
            text += f", momentum={self.momentum}"
        if not self.affine:
            text += ", affine=False"
        if not self.track_running_stats:
            text += ", track_running_stats=False"
        return text


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) input, per feature C.

    Args:
        num_features (int); eps (1e-5); momentum (0.1, None = cumulative average);
        affine (True); track_running_stats (True).
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) input: per channel, statistics over N, H and W.

    state_dict keys: weight, bias, running_mean, running_var, num_batches_tracked (as PyTorch).

    Example:
        >>> nn.BatchNorm2d(16)(convscope.randn(8, 16, 4, 4)).shape
        (8, 16, 4, 4)
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"
