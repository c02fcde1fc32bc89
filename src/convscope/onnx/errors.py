"""The errors of ONNX export and import (both are user errors: ValueError)."""

from __future__ import annotations


class OnnxExportError(ValueError):
    """A model (or one of its layers) that cannot be written as an equivalent ONNX graph."""


class OnnxImportError(ValueError):
    """An ONNX file that cannot be turned into a convscope module (ops, shapes, the file itself)."""


def require_onnx():
    """Import the ``onnx`` package, or say how to install it.

    Raises:
        ImportError: the package is missing (pip install "convscope[onnx]").
    """
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            'ONNX support needs the onnx package: pip install "convscope[onnx]" (or pip install onnx)'
        ) from e
    return onnx
