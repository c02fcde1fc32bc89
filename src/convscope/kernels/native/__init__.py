"""The native backend: compiled C kernels with the NumPy kernels' names and contracts.

Modules mirror :mod:`convscope.kernels`: ``conv`` (conv2d forward and both gradients,
conv_transpose2d) and ``batchnorm`` (training forward/backward, eval affine, channel sums);
the contract is in :mod:`convscope.kernels.dispatch`. A function raises
:class:`Unsupported` for a configuration it does not cover (float64, groups > 1, ...); the
dispatcher then runs the NumPy kernel. :func:`load_error` says why the compiled library is
unavailable, if it is; :func:`build_info` what it was compiled for.

The C sources (``conv_*.c``, ``batchnorm.c``) are compiled by ``setup.py`` into one shared
library loaded with ctypes; calls release the GIL and run on convscope's worker threads
(:func:`convscope.kernels.parallel.run_chunks`), one pool for everything.
"""

from __future__ import annotations

from ._lib import build_info, isa, load_error
from ._unsupported import Unsupported

__all__ = ["build_info", "isa", "load_error", "Unsupported"]
