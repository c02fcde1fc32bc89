"""ONNX export (read off the autograd tape) and import (a Module whose submodules are the graph's nodes).

Needs the ``onnx`` package (``pip install "convscope[onnx]"``); it is imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

    from ..autograd.tensor import Tensor
    from ..formats.atomic import StrPath
    from ..nn import Module

from .builder import DEFAULT_OPSET, SUPPORTED_EXPORT_OPSETS
from .errors import OnnxExportError, OnnxImportError


def export(model: Module, example_input: Tensor | npt.NDArray[Any], path: StrPath, **kwargs: Any) -> Any:
    """See :func:`convscope.onnx.export.export` (returns the written ``onnx.ModelProto``)."""
    from .export import export as _export

    return _export(model, example_input, path, **kwargs)


def load(path: StrPath, **kwargs: Any) -> Module:
    """See :func:`convscope.onnx.importer.load`."""
    from .importer import load as _load

    return _load(path, **kwargs)


__all__ = ["export", "load", "OnnxExportError", "OnnxImportError", "DEFAULT_OPSET", "SUPPORTED_EXPORT_OPSETS"]
