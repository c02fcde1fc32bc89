"""convscope: a convolutional-neural-network library on NumPy that is exact, fast and shows its work.

Quick tour::

    import convscope
    from convscope import nn
    x = convscope.randn(8, 3, 32, 32)
    conv = nn.Conv2d(3, 10, kernel_size=5, padding=2)
    conv(x).shape            # (8, 10, 32, 32)
"""

from . import random
from .autograd import (
    Function,
    Tensor,
    bool_,
    enable_grad,
    float32,
    float64,
    int64,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    tensor,
)
from .autograd.creation import (
    arange,
    cat,
    from_numpy,
    full,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    stack,
    where,
    zeros,
    zeros_like,
)
from .formats import CheckpointError, UnsafeCheckpointError, load, load_model, save
from .kernels.memory import keep_freed_memory
from .kernels.parallel import get_num_threads, set_num_threads  # loaded by the tape anyway
from .random import manual_seed

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "tensor",
    "Function",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_grad_enabled",
    "float32",
    "float64",
    "int64",
    "bool_",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "randn",
    "rand",
    "randint",
    "arange",
    "from_numpy",
    "cat",
    "stack",
    "where",
    "manual_seed",
    "set_num_threads",
    "get_num_threads",
    "keep_freed_memory",
    "backends",
    "random",
    "save",
    "load",
    "load_model",
    "CheckpointError",
    "UnsafeCheckpointError",
]


def __getattr__(name):
    # subpackages load on first use so `import convscope` stays light
    import importlib

    names = ("nn", "optim", "data", "models", "train", "analysis", "explain", "kernels", "backends", "onnx")
    if name in names:
        return importlib.import_module(f".{name}", __name__)
    if name == "summary":
        from .analysis import summary

        return summary
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")
