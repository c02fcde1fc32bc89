"""Pure NumPy forward/backward kernels. No Tensor, no autograd: arrays in, arrays out."""

from .memory import keep_freed_memory as _keep_freed_memory

_keep_freed_memory()
