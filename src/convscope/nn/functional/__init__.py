"""The torch.nn.functional-shaped API over convscope's ops.

Each function validates its arguments (clear ValueError/TypeError naming the
function) and records one tape node.
"""

from .activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv1d, conv2d, conv_transpose2d
from .dropout import dropout
from .linear import flatten, linear
from .loss import cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm
from .pooling import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from .resample import interpolate, pad

__all__ = [
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "linear",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "batch_norm",
    "dropout",
    "interpolate",
    "pad",
    "flatten",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
]
