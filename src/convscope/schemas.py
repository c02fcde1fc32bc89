"""One JSON shape per concept, shared by the CLI's ``--json`` and the HTTP API's responses.

Each function takes the library's own result and returns a plain JSON-ready dict (lists,
str, int, float, None). Whoever prints or serves a concept builds it here, so the CLI and
the server can never drift apart.
"""

from __future__ import annotations

import numpy as np


def _plain(value):
    """NumPy scalars and arrays -> Python numbers and lists (recursively)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def error(message: str, type_: str) -> dict:
    """``{"error": one-line message, "type": kind}``; kind is the exception class name, e.g.
    ``"UsageError"``, ``"DataError"``, ``"CheckpointError"``, ``"FileNotFoundError"``."""
    text = str(message).splitlines()[0] if str(message) else type_
    return {"error": text, "type": type_}


def error_from_exception(exc: BaseException) -> dict:
    return error(str(exc) or type(exc).__name__, type(exc).__name__)


def prediction(image: str, probabilities, labels, top_k: int) -> dict:
    """One image's top-k classes, most probable first.

    Returns:
        dict: ``{"image": str, "top": [{"index": int, "label": str, "probability": float}, ...]}``.
    """
    p = np.asarray(probabilities)
    order = np.argsort(-p, kind="stable")[: max(1, min(top_k, len(p)))]
    return {
        "image": str(image),
        "top": [{"index": int(i), "label": str(labels[i]), "probability": float(p[i])} for i in order],
    }


def predictions(checkpoint: str, items: list, warnings: list | None = None) -> dict:
    """``{"checkpoint": path, "predictions": [prediction, ...], "warnings": [str, ...]}``."""
    return {"checkpoint": str(checkpoint), "predictions": _plain(items), "warnings": list(warnings or [])}


def evaluation(report: dict, files: dict) -> dict:
    """A classification report (accuracy, count, confusion_matrix, classes, per_class, data,
    split, note) plus the files written (``confusion_png``, ``report_json``)."""
    return _plain(dict(report, **files))


def summary(result) -> dict:
    """A :class:`convscope.analysis.summary` result: model, input, layers, totals."""
    return _plain(result.to_dict())


def model_list(names: list) -> dict:
    return {"models": list(names)}


def calc(result: dict) -> dict:
    """A :mod:`convscope.analysis.calc` result (its working lines included)."""
    return _plain(result)


def trace(result: dict) -> dict:
    """A convolution trace (:func:`convscope.explain.conv_trace` or a model-value trace)."""
    return _plain(result)


def heatmap(fields: dict) -> dict:
    """A Grad-CAM/saliency explanation: checkpoint, image, png, method, layer, class_index,
    class, probability, score, predicted_index, predicted, predicted_probability,
    resized_from, input_size, strongest_cell."""
    return _plain(fields)


def features(checkpoint: str, image: str, files: dict) -> dict:
    """Feature-map and filter grids written: ``{"checkpoint", "image", "files": {layer: png}}``."""
    return {"checkpoint": str(checkpoint), "image": str(image), "files": dict(files)}


def training(result: dict) -> dict:
    """A training run's outcome without its per-epoch history (that is in history.json):
    status, test_accuracy, best_accuracy, checkpoint, last, out, epochs, seconds, defaults_applied."""
    return _plain({k: v for k, v in result.items() if k != "history"})


def model_description(summary_doc: dict, **extra) -> dict:
    """What the server says about its model (``GET /v1/model``): the :func:`summary` document
    plus ``classes``, ``task``, ``preprocessing`` (and the served extras: polarity, checkpoint,
    conv_layers)."""
    return _plain(dict(summary_doc, **extra))


def feature_maps(layer: str, activation) -> dict:
    """One layer's feature maps for one image: ``{"layer", "shape": [C, H, W], "values"}``."""
    a = np.asarray(activation)
    return {"layer": str(layer), "shape": list(a.shape), "values": _plain(a)}


def filters(layer: str, weight, bias=None) -> dict:
    """A conv layer's filters: ``{"layer", "shape": [C_out, C_in/groups, KH, KW], "values", "bias"}``."""
    w = np.asarray(weight)
    return {
        "layer": str(layer),
        "shape": list(w.shape),
        "values": _plain(w),
        "bias": None if bias is None else _plain(np.asarray(bias)),
    }
