"""Small helpers shared by the layer classes."""

from __future__ import annotations


def compact(value) -> str:
    """(3, 3) -> '3'; (3, 5) -> '(3, 5)'; strings quoted."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return str(value[0])
    if isinstance(value, str):
        return repr(value)
    return str(value)


def kwargs_repr(pairs) -> str:
    """Join name=value for the pairs whose value differs from its default."""
    parts = []
    for name, value, default in pairs:
        if value != default and compact(value) != compact(default):
            parts.append(f"{name}={compact(value)}")
    return ", ".join(parts)
