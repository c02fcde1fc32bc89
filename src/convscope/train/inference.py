"""Use a trained checkpoint: evaluate it on a data set or predict classes of image files.

Both apply exactly the preprocessing stored with the model at training time: the same
channel mode and image size, then the training split's per-channel mean/std.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..models.loading import load_model_file
from .metrics import classification_report, pixel_confusion, segmentation_report


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

    @property
    def task(self) -> str:
        """'segment' for models trained on per-pixel masks, else 'classify'."""
        return (self.checkpoint.meta.get("task") if self.checkpoint is not None else None) or "classify"

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

    def load_image(self, path, invert: bool = False) -> np.ndarray:
        """(1, C, H, W) in [0, 1] from any image file, converted as the training data was
        (not normalised: :meth:`logits` does that); ``invert`` flips it to 1 - x."""
        return self.prepare(path, invert)[0]

    def prepare(self, path, invert: bool = False) -> tuple:
        """Open an image file once: (image (1, C, H, W) in [0, 1], normalised model input,
        the file's own (width, height)). ``invert`` uses 1 - image (dark ink on light paper
        for a model trained on light ink on dark, or the reverse)."""
        from ..data import open_image, prepare_image

        c, h, w = self.input_shape
        img = open_image(path)
        image = prepare_image(img, c, (h, w))
        if invert:
            image = (np.float32(1.0) - image).astype(np.float32)
        x = self.normalizer(image) if self.normalizer is not None else image
        return image, x, img.size

    def segment_files(self, paths, out: str) -> list:
        """Per-pixel classes of image files: writes NAME_mask.png (coloured classes) and
        NAME_overlay.png (the mask over the image) into ``out``; returns one dict per file with
        the PNG paths and the pixel share of each predicted class."""
        import os

        from .segment_output import colour_mask, overlay, save_png

        results = []
        k = len(self.classes)
        for path in paths:
            image, x, _ = self.prepare(path)
            mask = self.logits(image)[0].argmax(axis=0)  # (K, H, W) -> (H, W)
            stem = os.path.splitext(os.path.basename(str(path)))[0]
            mask_png = save_png(colour_mask(mask, k), os.path.join(out, f"{stem}_mask.png"), scale=4)
            over_png = save_png(overlay(image[0], mask, k), os.path.join(out, f"{stem}_overlay.png"), scale=4)
            counts = np.bincount(mask.reshape(-1), minlength=k)
            results.append(
                {
                    "image": str(path),
                    "mask_png": mask_png,
                    "overlay_png": over_png,
                    "pixels": {self.classes[i]: int(counts[i]) for i in range(k) if counts[i]},
                }
            )
        return results

    def polarity_warning(self, image: np.ndarray, path) -> str | None:
        """A warning when an image (1, C, H, W) in [0, 1] looks inverted against the training
        data: its mean brightness is far from the training mean and close to 1 - that mean
        (a black-on-white digit for a model trained on white-on-black MNIST)."""
        if self.normalizer is None:
            return None
        trained, seen = float(np.mean(self.normalizer.mean)), float(image.mean())
        if abs(seen - trained) > 0.3 and abs((1.0 - seen) - trained) < abs(seen - trained) / 2:
            return (
                f"warning: {path} looks inverted against the training images (mean brightness "
                f"{seen:.2f}, training data {trained:.2f}): light ink on dark or the reverse? "
                f"try --invert"
            )
        return None

    def predict_images(self, images: list, names: list, top_k: int = 5) -> list:
        """Top-k classes (a :func:`convscope.schemas.prediction` each) of prepared images (1, C, H, W)."""
        from .. import schemas

        probs = self.probabilities(np.concatenate(images)) if images else np.zeros((0, 0))
        return [schemas.prediction(n, p, self.classes, top_k) for n, p in zip(names, probs, strict=True)]

    def predict_files(self, paths, top_k: int = 5, invert: bool = False) -> list:
        """Top-k classes with probabilities for each image file (all files are checked first)."""
        images = [self.load_image(p, invert) for p in paths]
        return self.predict_images(images, [str(p) for p in paths], top_k)

    def evaluate(self, data_spec: str | None = None, split: str = "test") -> dict:
        """Accuracy, per-class precision/recall and the confusion matrix on a data set.

        The same hold-out as in training is used when the spec, test_split and seed match.
        """
        from ..data import DataError, load_dataset

        info = self.checkpoint.meta.get("data", {}) if self.checkpoint is not None else {}
        # a run stores its data path as given and made absolute: the absolute one works anywhere
        spec = data_spec or info.get("spec_absolute") or info.get("spec")
        if not spec:
            raise ValueError("evaluate needs --data: the checkpoint does not name its data set")
        c, *size = self.input_shape
        splits = load_dataset(
            spec,
            test_split=info.get("test_split", 0.2),
            seed=info.get("seed", 0),
            image_size=tuple(size) if len(size) == 2 else None,
            mode="gray" if c == 1 else "rgb",
            ignore_index=(self.checkpoint.meta.get("ignore_index") if self.checkpoint is not None else None)
            or 255,
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
        if self.task == "segment":
            ignore = getattr(parts[0], "ignore_index", 255)
            k = len(self.classes)
            cm = np.zeros((k, k), dtype=np.int64)
            for i in range(0, len(x), 64):  # logits of every pixel: bounded memory
                cm += pixel_confusion(y[i : i + 64], self.logits(x[i : i + 64]).argmax(axis=1), k, ignore)
            report = segmentation_report(cm, self.classes)
            report.update(
                confusion_matrix=cm.tolist(), count=len(x), data=spec, split=split, note=splits.note
            )
            return report
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
