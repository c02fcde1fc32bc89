"""Choose the kernel backend: ``native`` (compiled C), ``numpy`` (vectorised NumPy/BLAS) or
``reference`` (loops and textbook im2col, the version to read).

All three compute the same thing through one signature per kernel; every op the chosen backend
has no version of (or a configuration it does not cover, e.g. float64 on the native kernels)
runs its NumPy kernel instead, transparently. The reference backend has its own convolution
(conv1d/conv2d, both gradients, transposed convolution), max/average pooling (adaptive too)
and batch norm; elementwise ops, linear layers, padding modes and resampling run their NumPy
kernels under it. The rules a backend follows are in :mod:`convscope.kernels.dispatch`.

Example:
    >>> import convscope
    >>> convscope.backends.current() in convscope.backends.available()
    True
    >>> with convscope.backends.use("reference"):
    ...     convscope.backends.current()
    'reference'
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from .kernels import dispatch as _dispatch
from .kernels import memory as _memory
from .kernels.parallel import get_num_threads

__all__ = ["available", "current", "use", "info", "Unsupported"]

Unsupported = _dispatch.Unsupported


def available() -> list[str]:
    """Names of the backends that can run here, e.g. ``['native', 'numpy', 'reference']``
    (``native`` only when its compiled library loaded)."""
    return [name for name in _dispatch.BACKENDS if name != "native" or _dispatch.native_error() is None]


def current() -> str:
    """The backend in use.

    Raises:
        ValueError: ``CONVSCOPE_BACKEND`` names an unknown or unavailable backend.
    """
    return _dispatch.active()


class use:  # noqa: N801 - a function that also works as a context manager
    """Switch the backend: ``use("reference")`` sets it; ``with use("reference"): ...`` sets it
    for the block and restores the previous one afterwards.

    Args:
        name (str): ``'native'``, ``'numpy'`` or ``'reference'``.

    Raises:
        ValueError: an unknown name, or ``'native'`` where it was not built (with the reason).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._previous = _dispatch.set_active(name)

    def __enter__(self) -> use:
        return self

    def __exit__(self, *exc: object) -> None:
        _dispatch._restore(self._previous)

    def __repr__(self) -> str:
        return f"convscope.backends.use({self.name!r})"


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info

        libs = [
            f"{i.get('internal_api')} {i.get('version')}"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
        return ", ".join(libs) or "unknown"
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        return "unknown (threadpoolctl not installed)"


def info() -> dict[str, Any]:
    """What runs the kernels here: the active backend, the available ones, the native build
    (instruction set, or why it is unavailable), the thread count, NumPy/BLAS and the malloc
    setting. JSON-able; never raises (an invalid ``CONVSCOPE_BACKEND`` is reported as ``error``).

    Example:
        >>> sorted(convscope.backends.info())[:3]
        ['available', 'backend', 'blas']
    """
    error = None
    try:
        backend = current()
    except ValueError as e:
        backend, error = None, str(e)
    native_reason = _dispatch.native_error()
    native: dict[str, Any] = {"available": native_reason is None, "reason": native_reason}
    if native_reason is None:
        from .kernels import native as _native

        build = getattr(_native, "build_info", None)
        if build is not None:
            native.update(build())
    out: dict[str, Any] = {
        "backend": backend,
        "available": available(),
        "requested_by_env": os.environ.get(_dispatch.ENV_VAR) or None,
        "native": native,
        "threads": get_num_threads(),
        "numpy": np.__version__,
        "blas": _blas(),
        "machine": platform.machine(),
        "keep_freed_memory": _memory.is_enabled(),
    }
    if error is not None:
        out["error"] = error
    return out
