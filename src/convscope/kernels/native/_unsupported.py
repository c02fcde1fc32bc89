"""The exception a native kernel raises for a configuration it does not cover."""

from __future__ import annotations

try:  # the dispatcher's own class, once the backend switch exists
    from ..dispatch import Unsupported
except ImportError:  # pragma: no cover - before the dispatcher is merged

    class Unsupported(Exception):  # type: ignore[no-redef]
        """This kernel does not cover the configuration; the NumPy kernel runs instead."""


__all__ = ["Unsupported"]
