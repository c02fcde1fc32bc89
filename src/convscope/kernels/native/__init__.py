"""The native backend: compiled C kernels with the NumPy kernels' names and contracts.

Modules mirror :mod:`convscope.kernels` (``conv``, ...). A function raises
:class:`Unsupported` for a configuration it does not cover; the dispatcher then runs the
NumPy kernel. :func:`load_error` says why the compiled library is unavailable, if it is.
"""

from __future__ import annotations

from ._lib import isa, load_error
from ._unsupported import Unsupported

__all__ = ["isa", "load_error", "Unsupported"]
