"""SyncBatchNorm: batch normalisation whose training statistics span every rank's shard.

With it, N ranks with batch b normalise exactly as one process with batch N*b (up to float32
summation order). Forward reduces the per-channel (sum, sum of squares, count) in one float64
Allreduce; backward reduces (sum of g, sum of g * xhat) in another, so the input gradient
accounts for every rank's samples. The weight and bias gradients stay local; the data-parallel
gradient reduction sums them like any other parameter's.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..nn.functional._checks import check_ndim, check_tensor
from ..nn.modules.normalization import _BatchNorm
from . import comm

_PHANTOM = {"on": False}


class phantom_batch:
    """Context manager: SyncBatchNorm layers count this rank's batch as empty.

    A rank whose shard of the last global batch is empty still has to join every collective,
    so it runs a stand-in batch inside this block (with its loss multiplied by zero): its
    statistics and gradient sums then contribute nothing.
    """

    def __enter__(self):
        self._previous, _PHANTOM["on"] = _PHANTOM["on"], True
        return self

    def __exit__(self, *exc):
        _PHANTOM["on"] = self._previous
        return False


def _channel_view(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))  # (C,) -> (1, C, 1, ...)


def _axes(ndim: int) -> tuple:
    return (0,) + tuple(range(2, ndim))


class SyncBatchNormTrain(Function):
    """Training-mode batch norm with statistics reduced over all ranks (returns out, mean, var, count)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        axes, dtype = _axes(x.ndim), x.dtype
        c = x.shape[1]
        stats = np.empty(2 * c + 1, np.float64)
        stats[:c] = x.sum(axis=axes, dtype=np.float64)
        stats[c : 2 * c] = np.square(x, dtype=np.float64).sum(axis=axes)
        stats[2 * c] = x.size // c
        if _PHANTOM["on"]:
            stats[:] = 0
        ctx.phantom = _PHANTOM["on"]
        comm.allreduce_sum_(stats)
        count = stats[2 * c]
        if count <= 1:
            raise ValueError(
                f"SyncBatchNorm: training needs more than 1 value per channel over all ranks, got {count:.0f}"
            )
        mean = stats[:c] / count
        var = np.maximum(stats[c : 2 * c] / count - mean * mean, 0.0)
        invstd = 1.0 / np.sqrt(var + eps)
        scale = invstd if weight is None else invstd * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        out = x * _channel_view(scale.astype(dtype), x.ndim) + _channel_view(shift.astype(dtype), x.ndim)
        ctx.x, ctx.mean, ctx.invstd, ctx.weight, ctx.count = x, mean, invstd, weight, count
        return out, mean.astype(dtype), var.astype(dtype), np.array(count)

    @staticmethod
    def backward(ctx, g):
        x, dtype = ctx.x, g.dtype
        axes, c = _axes(g.ndim), g.shape[1]
        xhat = (x - _channel_view(ctx.mean.astype(dtype), x.ndim)) * _channel_view(
            ctx.invstd.astype(dtype), x.ndim
        )
        local = np.empty(2 * c, np.float64)
        local[:c] = g.sum(axis=axes, dtype=np.float64)
        local[c:] = (g * xhat).sum(axis=axes, dtype=np.float64)
        if ctx.phantom:
            local[:] = 0
        gb, gw = local[:c].astype(dtype), local[c:].astype(dtype)
        comm.allreduce_sum_(local)
        g_mean, gxhat_mean = local[:c] / ctx.count, local[c:] / ctx.count
        gx = None
        if ctx.needs_input_grad[0] and ctx.phantom:  # a stand-in batch: nothing flows back
            gx = np.zeros_like(g)
        elif ctx.needs_input_grad[0]:
            scale = ctx.invstd if ctx.weight is None else ctx.invstd * ctx.weight
            gx = (
                g
                - _channel_view(g_mean.astype(dtype), g.ndim)
                - xhat * _channel_view(gxhat_mean.astype(dtype), g.ndim)
            ) * _channel_view(scale.astype(dtype), g.ndim)
        return (gx, gw if ctx.needs_input_grad[1] else None, gb if ctx.needs_input_grad[2] else None, None)


class SyncBatchNorm(_BatchNorm):
    """Batch norm over (N, C, ...) input whose training statistics cover the shards of all ranks.

    Args: as :class:`convscope.nn.BatchNorm2d` (state_dict keys too). Evaluation uses the
    running statistics, which every rank updates with the same global values.

    Shape:
        (N, C) or (N, C, *spatial) -> same shape; a rank's N may be 0 (an empty last shard).
    """

    _ndims = (2, 3, 4, 5)
    _layout = "(N, C, ...)"

    def forward(self, input):
        name = str(self._layer_name())
        if not (self.training or not self.track_running_stats):
            return super().forward(input)
        check_tensor(input, name)
        check_ndim(input, self._ndims, name, self._layout)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        out, mean, var, count = SyncBatchNormTrain.apply(input, self.weight, self.bias, float(self.eps))
        count = float(count.data)
        if self.track_running_stats:
            m = self.running_mean.dtype.type(factor)
            self.running_mean.data *= 1 - m
            self.running_mean.data += m * mean.data
            self.running_var.data *= 1 - m
            self.running_var.data += m * (var.data * var.data.dtype.type(count / (count - 1)))
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module, exclude=()):
        """Replace every BatchNorm1d/2d in ``module`` by a SyncBatchNorm holding its parameters and
        buffers (as PyTorch's ``nn.SyncBatchNorm.convert_sync_batchnorm``); returns the module.

        Args:
            exclude (collection of modules, default ()): batch norms to keep as they are (beyond
                PyTorch: e.g. frozen ones, which the trainer keeps in eval mode).
        """
        excluded = {id(m) for m in exclude}
        if id(module) in excluded:
            return module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(
                module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
            )
            # the same Parameter and buffer objects: an optimizer built on the model keeps working
            for name, param in module.named_parameters(recurse=False):
                setattr(sync, name, param)
            for name, buf in module.named_buffers(recurse=False):
                sync.register_buffer(name, buf)
            sync.training = module.training
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, exclude)
            if converted is not child:
                setattr(module, name, converted)
        return module
