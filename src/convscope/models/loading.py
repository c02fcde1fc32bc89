"""One way to get a usable model from a file: a training checkpoint (.npz) or an ONNX graph (.onnx).

The command-line tools (predict, explain, summary, export, evaluate) and the HTTP server call
:func:`load_model_file`; the trainer and checkpoints call :func:`create_model`, which also accepts
an .onnx path wherever a registry name is expected (``convscope train --model model.onnx``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..formats.atomic import StrPath
    from ..nn import Module

ONNX_SUFFIX = ".onnx"


def is_onnx_path(spec: object) -> bool:
    """Whether a model spec names an ONNX file (by its suffix)."""
    return isinstance(spec, (str, os.PathLike)) and os.fspath(spec).lower().endswith(ONNX_SUFFIX)


@dataclass
class LoadedModel:
    """A model read from a file with what is known about its input.

    Attributes:
        model (Module): in eval mode.
        path (str): the file it came from.
        kind (str): 'checkpoint' or 'onnx'.
        input_shape (tuple or None): (C, H, W) of one input; None where unknown (a dynamic ONNX
            dimension and no --image-size).
        classes (list of str or None): class names when the file holds them.
        normalizer (Normalizer or None): per-channel mean/std applied before the model.
        checkpoint (Checkpoint or None): the loaded checkpoint (kind 'checkpoint').
        label (str): a short description for tables.
    """

    model: Module
    path: str
    kind: str
    input_shape: tuple | None
    classes: list | None
    normalizer: Any = None
    checkpoint: Any = None
    label: str = ""
    preprocessing: dict = field(default_factory=dict)


def load_model_file(
    path: StrPath,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: Sequence[int] | None = None,
) -> LoadedModel:
    """Load a checkpoint or an ONNX file for inference.

    Args:
        path (str): a ``.npz`` checkpoint (or a run folder holding ``best.npz``) or a ``.onnx`` file.
        mean, std (sequence of float, optional): per-channel normalisation for an ONNX file
            without preprocessing metadata (ignored when the file has it, or for checkpoints).
        image_size (tuple (H, W), optional): the input size for an ONNX graph whose spatial
            dimensions are dynamic or absent from the metadata.

    Returns:
        LoadedModel

    Raises:
        FileNotFoundError, CheckpointError, OnnxImportError, ValueError.
    """
    from ..data import Normalizer

    path = os.fspath(path)
    if not is_onnx_path(path):
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        pre = ckpt.preprocessing
        norm = Normalizer.from_dict(pre["normalizer"]) if pre.get("normalizer") else None
        shape = tuple(pre.get("input_shape") or ()) or None
        return LoadedModel(
            ckpt.build_model(),
            getattr(ckpt, "path", path) or path,
            "checkpoint",
            shape,
            ckpt.classes or None,
            norm,
            ckpt,
            f"{ckpt.model_name} ({path})",
            pre,
        )
    from ..onnx import load as load_onnx

    model = load_onnx(path)
    pre = model.preprocessing()
    shape = pre.get("input_size") or tuple(model.input_shape)
    if image_size is not None:
        shape = (shape[0],) + tuple(int(v) for v in image_size)
    if not shape or any(d is None for d in shape):
        shape = None  # a dynamic dimension: the caller needs --input / --image-size
    norm = None
    if not pre.get("normalization_in_graph"):
        m, s = pre.get("mean", mean), pre.get("std", std)
        if m is not None and s is not None:
            norm = Normalizer(m, s)
        elif (m is None) != (s is None):
            raise ValueError(f"{path}: give both --mean and --std (got only one)")
    return LoadedModel(model, path, "onnx", shape, pre.get("classes"), norm, None, f"onnx ({path})", pre)


def create_model(name: str, num_classes: int = 10, in_channels: int | None = None, **kwargs: Any) -> Module:
    """:func:`convscope.models.create`, or for a path ending in .onnx the imported graph.

    An imported model keeps ``model_name='onnx'`` and ``model_config={'path': ..., ...}`` so a
    checkpoint of a fine-tuned ONNX model rebuilds it from the same file.

    Raises:
        ValueError: the ONNX model's output size or input channels differ from ``num_classes``
            / ``in_channels`` (an imported classifier is not resized).
    """
    from . import registry

    path = kwargs.pop("path", None) if name == "onnx" else (name if is_onnx_path(name) else None)
    if path is None:
        return registry.create(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    from ..onnx import load as load_onnx

    path = os.path.abspath(os.fspath(path))
    model = load_onnx(path)
    c = model.input_shape[0] if model.input_shape else None
    if in_channels is not None and c is not None and c != in_channels:
        raise ValueError(f"{path}: the ONNX model takes {c} input channels, the data has {in_channels}")
    out = _output_size(model, kwargs.get("input_size"), c or in_channels)
    if out is not None and out != num_classes:
        raise ValueError(
            f"{path}: the ONNX model predicts {out} classes, the data has {num_classes}; "
            "fine-tuning keeps the imported classifier, so the class counts must match"
        )
    object.__setattr__(model, "model_name", "onnx")
    object.__setattr__(
        model, "model_config", {"path": path, "num_classes": num_classes, "in_channels": in_channels}
    )
    return model


def _output_size(model, input_size, channels) -> int | None:
    import numpy as np

    from ..autograd.grad_mode import no_grad
    from ..autograd.tensor import Tensor

    shape = model.input_shape
    if input_size is not None:
        shape = (channels, *input_size)
    if not shape or any(d is None for d in shape):
        return None
    with no_grad():
        out = model(Tensor(np.zeros((1, *shape), dtype=np.float32)))
    out = out[0] if isinstance(out, tuple) else out
    return int(out.shape[1]) if out.ndim == 2 else None
