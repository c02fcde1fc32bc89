"""The native (compiled C) backend: a placeholder until its kernels land.

The package's contract is in :mod:`convscope.kernels.dispatch`: modules named like the NumPy
kernel modules with the same functions, and :func:`load_error`.
"""

from __future__ import annotations


def load_error() -> str | None:
    """None when the compiled library loaded, else the reason the native backend is unavailable."""
    return "the native backend is not built yet"
