"""ONNX export (read off the autograd tape) and import (a Module whose submodules are the graph's nodes).

Needs the ``onnx`` package (``pip install "convscope[onnx]"``); it is imported only when used.
"""

from __future__ import annotations

from .builder import DEFAULT_OPSET, SUPPORTED_EXPORT_OPSETS
from .errors import OnnxExportError, OnnxImportError


def export(model, example_input, path, **kwargs):
    """See :func:`convscope.onnx.export.export`."""
    from .export import export as _export

    return _export(model, example_input, path, **kwargs)


def load(path, **kwargs):
    """See :func:`convscope.onnx.importer.load`."""
    from .importer import load as _load

    return _load(path, **kwargs)


__all__ = ["export", "load", "OnnxExportError", "OnnxImportError", "DEFAULT_OPSET", "SUPPORTED_EXPORT_OPSETS"]
