"""The served model: loading, image decoding with limits, and the model work behind each endpoint.

Every call that runs the model goes through :attr:`ModelService.lock`. The explain code is not
re-entrant (Grad-CAM freezes the parameters and hooks layers of the shared model), so batched
predictions and explanations take turns on the one model instead of seeing each other's hooks
and flags; throughput comes from batching and from ``--workers``.
"""

from __future__ import annotations

import io
import os
import threading
import time
import warnings

import numpy as np

from .. import schemas
from .errors import ApiError, invalid, not_found, too_large, unsupported

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MAX_PIXELS = 40_000_000  # declared pixels above this are refused before any decoding
MAX_JSON_VALUES = 1_000_000  # feature maps / filters larger than this are only served as PNG


class ModelService:
    """A checkpoint loaded once, with its preprocessing, summary and a lock for the model.

    Args:
        path (str): a training run folder, a ``.npz`` checkpoint or an ``.onnx`` file.
        max_pixels (int, default 40e6): largest declared image size (width x height) decoded.

    Raises:
        ValueError: an ``.onnx`` file while ONNX import is unavailable, or an unreadable model.
    """

    def __init__(self, path: str, max_pixels: int = MAX_PIXELS):
        from ..analysis import summary
        from ..train.inference import Predictor

        start = time.perf_counter()
        if str(path).lower().endswith(".onnx"):
            import importlib.util

            if importlib.util.find_spec("convscope.models.loading") is None:  # the ONNX-aware loader
                raise ValueError(
                    f"{path}: serving an .onnx file needs ONNX import, which this build does not "
                    "have; expected a training run folder or a .npz checkpoint"
                )
        self.path = str(path)
        self.predictor = Predictor(path)
        self.model = self.predictor.model
        self.classes = [str(c) for c in self.predictor.classes]
        self.input_shape = tuple(int(v) for v in self.predictor.input_shape)
        self.max_pixels = int(max_pixels)
        self.lock = threading.Lock()
        ckpt = self.predictor.checkpoint  # None for an ONNX file
        loaded = getattr(self.predictor, "loaded", None)
        self.preprocessing = dict(
            ckpt.preprocessing if ckpt is not None else (getattr(loaded, "preprocessing", None) or {})
        )
        self.model_name = ckpt.model_name if ckpt is not None else "onnx"
        task = getattr(self.predictor, "task", None)  # 'classify' or 'segment' (the Predictor's word)
        self.task = str(task() if callable(task) else task or "classify")
        self.summary = summary(self.model, self.input_shape, model_name=self.model_name)
        self.layer_names = [n for n, _ in self.model.named_modules() if n]
        self.output_shape = tuple(self.summary.output_shape)
        self.load_seconds = time.perf_counter() - start

    # ---- description -------------------------------------------------------------------------

    def describe(self) -> dict:
        """The object of ``convscope summary --json`` plus classes, task and preprocessing."""
        norm = self.predictor.normalizer
        mean = None if norm is None else float(np.mean(norm.mean))
        return schemas.model_description(
            schemas.summary(self.summary),
            classes=self.classes,
            task=self.task,
            preprocessing=self.preprocessing,
            polarity=None if mean is None else ("light-on-dark" if mean < 0.5 else "dark-on-light"),
            checkpoint=os.path.basename(self.path.rstrip("/")) or self.path,
            conv_layers=self.conv_layers(),
        )

    def conv_layers(self) -> list:
        from ..explain.model_trace import conv_layer_names

        return conv_layer_names(self.model)

    def check_layer(self, name: str | None, conv_only: bool = False) -> str:
        """``name`` if the model has such a layer, else a 404 listing the valid names."""
        valid = self.conv_layers() if conv_only else self.layer_names
        if name is None or name == "":
            if conv_only and valid:
                return valid[0]
            raise invalid(f"a layer name is required; expected one of: {', '.join(valid)}")
        if name not in self.layer_names or (conv_only and name not in valid):
            kind = "conv layer" if conv_only else "layer"
            raise not_found(f"unknown {kind} {name!r}; valid names: {', '.join(valid)}")
        return name

    # ---- inputs ------------------------------------------------------------------------------

    def decode(self, data: bytes, filename: str = "upload") -> tuple:
        """Image bytes -> (image (1, C, H, W) in [0, 1], normalised input, original (W, H)).

        Raises:
            ApiError: 415 for anything but a decodable PNG/JPEG/GIF/BMP/WebP, 413 for an image
                whose header declares more than ``max_pixels`` pixels (checked before decoding).
        """
        from PIL import Image, UnidentifiedImageError

        from ..data import prepare_image

        if not data:
            raise unsupported(
                f"{filename}: the upload is empty; expected an image file ({', '.join(FORMATS)})"
            )
        try:
            img = Image.open(io.BytesIO(data))  # reads the header only
        except Image.DecompressionBombError as e:
            raise too_large(f"{filename}: refused before decoding: {e}") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise unsupported(
                f"{filename} is not a readable image; expected one of {', '.join(FORMATS)}"
            ) from None
        if img.format not in FORMATS:
            raise unsupported(f"{filename} is a {img.format} image; expected one of {', '.join(FORMATS)}")
        w, h = img.size
        if w * h > self.max_pixels:
            raise too_large(
                f"{filename} declares {w}x{h} = {w * h} pixels; refused before decoding "
                f"(the limit is {self.max_pixels} pixels)"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
        except Exception as e:  # truncated data, decoder errors, a bomb warning
            raise unsupported(
                f"{filename} could not be decoded as {img.format} ({type(e).__name__}); "
                "expected a valid image"
            ) from None
        c, hh, ww = self.input_shape
        image = prepare_image(img, c, (hh, ww))
        norm = self.predictor.normalizer
        x = norm(image) if norm is not None else image
        return image, np.ascontiguousarray(x, dtype=np.float32), (w, h)

    def check_classifier(self) -> None:
        """422 for a model whose output is not one score per class (a segmentation mask, ...)."""
        if len(self.output_shape) != 1:
            raise invalid(
                f"this endpoint applies to classifiers (output: one score per class); the served "
                f"{self.model_name} model outputs {list(self.output_shape)} per input",
                "NotApplicable",
            )

    def check_inputs(self, inputs) -> np.ndarray:
        """A JSON nested list of shape (N, C, H, W), already preprocessed -> float32 array (422 otherwise)."""
        c, h, w = self.input_shape
        try:
            x = np.asarray(inputs, dtype=np.float32)
        except (ValueError, TypeError):
            raise invalid(
                f"inputs must be a nested list of numbers of shape (N, {c}, {h}, {w}); got a ragged "
                "or non-numeric list",
                "ShapeError",
            ) from None
        if x.ndim != 4 or x.shape[1:] != (c, h, w) or x.shape[0] < 1:
            raise invalid(
                f"inputs must have shape (N, {c}, {h}, {w}) with N >= 1; received shape {list(x.shape)}",
                "ShapeError",
            )
        if not np.isfinite(x).all():
            raise invalid("inputs contain NaN or infinite values; expected finite numbers", "ValueError")
        return x

    # ---- model work (callers hold no lock; each method takes it) -----------------------------

    def probabilities(self, x: np.ndarray, wait: bool = True) -> np.ndarray | None:
        """Softmax (N, num_classes) of normalised inputs (N, C, H, W); with ``wait=False``, None
        when another request holds the model."""
        from ..autograd.grad_mode import no_grad
        from ..autograd.tensor import Tensor

        if not self.lock.acquire(blocking=wait):
            return None
        try:
            with no_grad(), self.model.evaluating():
                z = self.model(Tensor._wrap(np.ascontiguousarray(x, dtype=np.float32), False)).data
        finally:
            self.lock.release()
        z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def heatmap(self, image, x, method: str, layer: str | None, class_index: int | None) -> dict:
        """Grad-CAM / Grad-CAM++ / saliency of one image, with the strongest cell's receptive field."""
        from ..explain.gradcam import METHODS, explain_heatmap, resolve_layer, strongest_cell

        if method not in METHODS:
            raise invalid(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if layer is not None and method != "saliency":
            self.check_layer(layer)
        k = len(self.classes)
        if class_index is not None and not 0 <= class_index < k:
            raise invalid(f"class_index must be in 0..{k - 1} (the model has {k} classes); got {class_index}")
        with self.lock:
            try:
                name = None if method == "saliency" else resolve_layer(self.model, x, layer)[0]
                result = explain_heatmap(self.model, x, method, name, class_index)
            except ValueError as e:
                raise invalid(str(e)) from None
            box = None
            if name is not None and result["heatmap"].any():
                box = strongest_cell(self.model, x, name, result["class_idx"], method, result=result)
        return {"result": result, "layer": name, "box": box}

    def features(self, x, layer: str) -> np.ndarray:
        from ..explain.figures import features_for_layers

        self.check_layer(layer)
        with self.lock:
            try:
                return features_for_layers(self.model, x, [layer])[layer]
            except ValueError as e:
                raise invalid(str(e)) from None

    def filters(self, layer: str) -> tuple:
        module = self.model.get_submodule(self.check_layer(layer, conv_only=True))
        bias = None if module.bias is None else module.bias.data.copy()
        return module.weight.data.copy(), bias

    def conv_trace(self, x, layer: str, at: tuple) -> dict:
        """:func:`trace_model_value` plus what the page draws: ``window`` (the padded input window,
        C_in/groups x KH x KW, float64) and ``filter`` (filter o, same shape)."""
        from ..explain.model_trace import capture_layer, trace_model_value

        self.check_layer(layer, conv_only=True)
        with self.lock:
            try:
                result = trace_model_value(self.model, x, layer, at)
            except ValueError as e:
                raise invalid(str(e)) from None
            module, inp, _ = capture_layer(self.model, x, layer)
        t = result["trace"]
        pos = t["positions"][0]
        o = result["at"][0]
        c_g = module.weight.shape[1]
        g = o // (module.out_channels // module.groups)
        padded = np.pad(
            np.asarray(inp[0, g * c_g : (g + 1) * c_g], np.float64),
            ((0, 0),) + tuple(map(tuple, t["padding"])),
        )  # (C_in/groups, Hp, Wp)
        wp = pos["window_padded"]
        window = padded[
            :, wp["rows"][0] : wp["rows"][1] : wp["step"][0], wp["cols"][0] : wp["cols"][1] : wp["step"][1]
        ]
        result["window"] = window
        result["filter"] = module.weight.data[o].astype(np.float64)
        return result


def check_json_size(shape, layer: str) -> None:
    """413 pointing to ``format=png`` when an array of ``shape`` is too large for a JSON answer."""
    n = int(np.prod(shape))
    if n > MAX_JSON_VALUES:
        raise too_large(
            f"layer {layer!r} has {n} values {list(shape)}, more than the JSON limit of "
            f"{MAX_JSON_VALUES}; ask for format=png"
        )


def parse_at(text: str) -> tuple:
    """'o,y,x' (as ``explain conv --at``) -> (o, y, x); 422 otherwise."""
    try:
        at = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        at = ()
    if len(at) != 3 or min(at) < 0:
        raise ApiError(
            422,
            f"at must be three non-negative integers o,y,x (channel, row, column), e.g. 0,3,4; got {text!r}",
            "ValidationError",
        )
    return at
