"""Use a trained checkpoint: evaluate it on a data set or predict classes of image files.

Both apply exactly the preprocessing stored with the model at training time: the same
channel mode and image size, then the training split's per-channel mean/std.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..models.loading import load_model_file
from .metrics import classification_report


class Predictor:
    """A model loaded from a checkpoint or an ONNX file, together with its preprocessing.

    Args:
        path (str): a .npz checkpoint (or run folder) or a .onnx file.
        mean, std, image_size: preprocessing for an ONNX file without it in its metadata
            (see :func:`convscope.models.loading.load_model_file`).

    Attributes:
        model (Module): in eval mode.
        path (str): the file read.
        checkpoint (Checkpoint or None): the loaded checkpoint (None for ONNX files).
        normalizer (Normalizer or None): the training split's statistics.
        input_shape (tuple): (C, H, W) the model was trained on.
        classes (list): class names.
    """

    def __init__(self, path, mean=None, std=None, image_size=None, runtime: str = "convscope"):
        if runtime not in ("convscope", "onnxruntime"):
            raise ValueError(f"runtime must be 'convscope' or 'onnxruntime', got {runtime!r}")
        loaded = load_model_file(path, mean=mean, std=std, image_size=image_size)
        if runtime == "onnxruntime" and loaded.kind != "onnx":
            raise ValueError(
                f"--runtime onnxruntime runs .onnx files; {path} is a checkpoint (export it first)"
            )
        self.session = _ort_session(loaded.path) if runtime == "onnxruntime" else None
        if loaded.input_shape is None:
            raise ValueError(
                f"{path}: the model's input size is not fixed in the file; give --image-size HxW"
            )
        self.loaded = loaded
        self.path = loaded.path
        self.checkpoint = loaded.checkpoint
        self.model = loaded.model
        self.normalizer = loaded.normalizer
        self.input_shape = tuple(loaded.input_shape)
        self.classes = list(loaded.classes or []) or [str(i) for i in range(self._num_classes())]

    def _num_classes(self):
        if self.checkpoint is not None:
            return int(self.checkpoint.model_config.get("num_classes", 0))
        with no_grad():
            out = self.model(Tensor._wrap(np.zeros((1, *self.input_shape), dtype=np.float32), False))
        return int(out.shape[1])

    def logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw scores (N, num_classes) for images (N, C, H, W) in [0, 1] (normalised here)."""
        outs = []
        with no_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                if self.normalizer is not None:
                    xb = self.normalizer(xb)
                xb = np.ascontiguousarray(xb, dtype=np.float32)
                if self.session is not None:  # the same file run by onnxruntime instead
                    outs.append(self.session.run(None, {self.session.get_inputs()[0].name: xb})[0])
                else:
                    outs.append(self.model(Tensor._wrap(xb, False)).data)
        return np.concatenate(outs) if outs else np.zeros((0, len(self.classes)), np.float32)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def load_image(self, path) -> np.ndarray:
        """(1, C, H, W) in [0, 1] from any image file, converted as the training data was
        (not normalised: :meth:`logits` does that)."""
        from ..data import prepare_image

        c, h, w = self.input_shape
        return prepare_image(path, c, (h, w))

    def prepare(self, path) -> tuple:
        """Open an image file once: (image (1, C, H, W) in [0, 1], normalised model input,
        the file's own (width, height))."""
        from ..data import open_image, prepare_image

        c, h, w = self.input_shape
        img = open_image(path)
        image = prepare_image(img, c, (h, w))
        x = self.normalizer(image) if self.normalizer is not None else image
        return image, x, img.size

    def predict_files(self, paths, top_k: int = 5) -> list:
        """Top-k classes with probabilities for each image file (all files are checked first)."""
        images = [self.load_image(p) for p in paths]
        probs = self.probabilities(np.concatenate(images)) if images else np.zeros((0, 0))
        k = max(1, min(top_k, probs.shape[1] if probs.size else 1))
        out = []
        for path, p in zip(paths, probs, strict=True):
            order = np.argsort(-p, kind="stable")[:k]
            out.append(
                {
                    "image": str(path),
                    "top": [
                        {"class": self.classes[i], "index": int(i), "probability": float(p[i])} for i in order
                    ],
                }
            )
        return out

    def evaluate(self, data_spec: str | None = None, split: str = "test") -> dict:
        """Accuracy, per-class precision/recall and the confusion matrix on a data set.

        The same hold-out as in training is used when the spec, test_split and seed match.
        """
        from ..data import DataError, load_dataset

        info = self.checkpoint.meta.get("data", {}) if self.checkpoint is not None else {}
        spec = data_spec or info.get("spec")
        if not spec:
            raise ValueError("evaluate needs --data: the checkpoint does not name its data set")
        c, h, w = self.input_shape
        splits = load_dataset(
            spec,
            test_split=info.get("test_split", 0.2),
            seed=info.get("seed", 0),
            image_size=(h, w),
            mode="gray" if c == 1 else "rgb",
        )
        if splits.num_classes != len(self.classes):
            raise DataError(
                f"{spec} has {splits.num_classes} classes but the checkpoint's model predicts "
                f"{len(self.classes)} ({', '.join(map(str, self.classes[:10]))})"
            )
        if split == "test":
            parts = [splits.test]
        elif split == "train":
            parts = [splits.train]
        elif split == "all":
            parts = [splits.train, splits.test]
        else:
            raise ValueError(f"split must be 'test', 'train' or 'all', got {split!r}")
        x = np.concatenate([p.x for p in parts])
        y = np.concatenate([p.y for p in parts])
        pred = self.logits(x).argmax(axis=1)
        report = classification_report(y, pred, len(self.classes), self.classes)
        report.update(data=spec, split=split, note=splits.note)
        return report


def _ort_session(path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("--runtime onnxruntime needs onnxruntime: pip install onnxruntime") from None
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
