"""Which implementation of a kernel runs: the backend switch and its fallback rules.

convscope has three interchangeable kernel backends with one signature per function:

* ``numpy`` -- the vectorised NumPy/BLAS kernels: ``convscope/kernels/conv.py``, ``pool.py``,
  ``batchnorm.py``, ``elementwise.py``, ``gemm.py``, ``pad.py``, ``resample.py``. Complete: every
  kernel exists here, and it is the fallback of the other two.
* ``reference`` -- ``convscope/kernels/reference/<family>.py``: loops and textbook im2col/col2im,
  written to be read beside the lecture (conv, pool, batchnorm).
* ``native`` -- ``convscope/kernels/native/<family>.py``: compiled C kernels, when built.

The contract a backend module follows (the reference and native packages both do):

1. **Same names, same signatures, same results.** A backend's module for a family is named like
   the NumPy module (``conv``, ``pool``, ``batchnorm``, ``elementwise``, ``gemm``, ...) and defines
   any subset of the NumPy module's public functions with identical arguments and return values
   (shapes, dtypes: float32 stays float32, float64 stays float64), e.g.
   ``conv2d_forward(x, weight, bias, stride, padding, dilation, groups) -> (out, saved)`` and
   ``conv2d_backward(grad_out, saved, need_input, need_weight, need_bias) -> (gx, gw, gb)``.
   Padding is always per side, ``((top, bottom), (left, right))``
   (:data:`convscope.kernels.geometry.Pads`); :class:`~convscope.kernels.geometry.ConvGeometry`
   computes output sizes. Inputs reach the kernels already validated by ``nn.functional`` (so
   every backend gives the same errors for bad input), but they may be non-contiguous views.
2. **Missing function -> NumPy.** A function the backend module does not define (or a family it
   has no module for) runs the NumPy function instead.
3. **Unsupported configuration -> NumPy.** A backend function that does not cover a
   configuration (an unusual dilation/groups combination, float64, a kernel size it has no code
   for, ...) raises :class:`Unsupported` *before* changing anything; the dispatcher then runs the
   NumPy function with the same arguments. Any other exception is a real error and propagates.
4. **Backward follows forward.** The op (``convscope/ops``) remembers which backend ran a
   forward (:func:`call` returns its name) and runs the matching backward there
   (:func:`call_on`), so a saved context (``saved`` of ``conv2d_forward``, the indices of max
   pooling, ...) only ever reaches the backward of the implementation that made it. A backend
   whose forward accepted a configuration must therefore accept the backward of it (raising
   :class:`Unsupported` in a backward is an error). If the backend module has no such backward
   function, the NumPy backward runs, and then the backend's saved context must be the NumPy
   one (the reference conv returns a :class:`convscope.kernels.conv.ConvSaved`, for example).
5. **Threads.** Native code takes its thread count from
   :func:`convscope.kernels.parallel.get_num_threads` (set by ``convscope.set_num_threads``).
6. **The native package** (``convscope.kernels.native``) defines ``load_error() -> str | None``:
   None when its compiled library loaded, else the reason it is unavailable (no compiler at
   install time, a failed build, a missing file...). It may define ``build_info() -> dict``
   (instruction set, compiler, flags...), which ``convscope.backends.info()`` reports.

The active backend is process-wide: ``convscope.backends.use(name)`` (also a context manager)
or the environment variable ``CONVSCOPE_BACKEND``; the default is ``native`` when it loaded,
else ``numpy``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "BACKENDS",
    "Unsupported",
    "active",
    "set_active",
    "native_error",
    "call",
    "call_on",
    "backend_function",
    "ENV_VAR",
]

#: Every backend name, in the order ``available()`` lists them.
BACKENDS = ("native", "numpy", "reference")
ENV_VAR = "CONVSCOPE_BACKEND"
NUMPY = "numpy"


class Unsupported(Exception):  # noqa: N818 - the contract's name, read by the native code
    """Raised by a reference/native kernel for a configuration it does not cover: NumPy runs it."""


_STATE: dict[str, str | None] = {"name": None}
_FUNCS: dict[tuple[str, str, str], Callable[..., Any] | None] = {}


def native_error() -> str | None:
    """None when the native backend loaded, else why it is unavailable."""
    try:
        from . import native
    except Exception as e:  # noqa: BLE001 - any failure to import means "not available"
        return f"the native package failed to import ({type(e).__name__}: {e})"
    try:
        return native.load_error()
    except Exception as e:  # noqa: BLE001
        return f"the native backend's load_error() failed ({type(e).__name__}: {e})"


def _check_name(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source}: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if name == "native":
        reason = native_error()
        if reason is not None:
            raise ValueError(f"{source}: the native backend is not available: {reason}")
    return name


def _default() -> str:
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested:
        return _check_name(requested, f"{ENV_VAR}={requested}")
    return "native" if native_error() is None else NUMPY


def active() -> str:
    """The backend in use (resolved from ``CONVSCOPE_BACKEND`` or the default on first use).

    Raises:
        ValueError: ``CONVSCOPE_BACKEND`` names an unknown or unavailable backend.
    """
    name = _STATE["name"]
    if name is None:
        name = _STATE["name"] = _default()
    return name


def set_active(name: str) -> str:
    """Make ``name`` the active backend; returns the previous one (or None if none was resolved).

    Raises:
        ValueError: unknown name, or ``native`` where it was not built.
    """
    _check_name(name, "convscope.backends.use")
    previous = _STATE["name"]
    _STATE["name"] = name
    return previous  # type: ignore[return-value]


def _restore(name: str | None) -> None:
    _STATE["name"] = name


def _module(backend: str, family: str) -> ModuleType | None:
    if backend == NUMPY:
        return importlib.import_module(f"convscope.kernels.{family}")
    package = f"convscope.kernels.{backend}"
    try:
        return importlib.import_module(f"{package}.{family}")
    except ModuleNotFoundError as e:
        if e.name in (f"{package}.{family}", package):
            return None  # the backend has no module for this family: NumPy runs it
        raise


def backend_function(backend: str, family: str, name: str) -> Callable[..., Any] | None:
    """The backend's own function ``family.name``, or None when it has none (NumPy runs then)."""
    key = (backend, family, name)
    if key not in _FUNCS:
        module = _module(backend, family)
        _FUNCS[key] = None if module is None else getattr(module, name, None)
    return _FUNCS[key]


def call(family: str, name: str, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Run kernel ``family.name`` on the active backend, falling back to NumPy.

    Returns:
        (result, backend): the kernel's return value and the name of the backend that ran it
        (pass it to :func:`call_on` for the matching backward).
    """
    backend = _STATE["name"] or active()
    if backend != NUMPY:
        fn = backend_function(backend, family, name)
        if fn is not None:
            try:
                return fn(*args, **kwargs), backend
            except Unsupported:
                pass
    return backend_function(NUMPY, family, name)(*args, **kwargs), NUMPY  # type: ignore[misc]


def call_on(backend: str, family: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``family.name`` on ``backend`` (the one that ran the forward), or NumPy if it lacks it.

    Raises:
        RuntimeError: the backend raised :class:`Unsupported` for a backward whose forward it ran.
    """
    fn = backend_function(backend, family, name) if backend != NUMPY else None
    if fn is None:
        return backend_function(NUMPY, family, name)(*args, **kwargs)  # type: ignore[misc]
    try:
        return fn(*args, **kwargs)
    except Unsupported as e:
        raise RuntimeError(
            f"the {backend} backend ran the forward of {family}.{name} but refused its backward ({e}); "
            f"a backend must support the backward of every forward it accepts"
        ) from e
