"""Use a trained checkpoint: evaluate it on a data set or predict classes of image files.

Both apply exactly the preprocessing stored with the model at training time: the same
channel mode and image size, then the training split's per-channel mean/std.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..checkpoint import load_checkpoint
from .metrics import classification_report


class Predictor:
    """A model rebuilt from a checkpoint together with its preprocessing.

    Attributes:
        model (Module): in eval mode.
        checkpoint (Checkpoint): the loaded file.
        normalizer (Normalizer): the training split's statistics.
        input_shape (tuple): (C, H, W) the model was trained on.
        classes (list): class names.
    """

    def __init__(self, path):
        from ..data import Normalizer

        self.checkpoint = load_checkpoint(path)
        self.model = self.checkpoint.build_model()
        pre = self.checkpoint.preprocessing
        self.normalizer = Normalizer.from_dict(pre["normalizer"]) if "normalizer" in pre else None
        self.input_shape = tuple(pre.get("input_shape") or ())
        self.classes = self.checkpoint.classes or [str(i) for i in range(self._num_classes())]

    def _num_classes(self):
        return int(self.checkpoint.model_config.get("num_classes", 0))

    def logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw scores (N, num_classes) for images (N, C, H, W) in [0, 1] (normalised here)."""
        outs = []
        with no_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                if self.normalizer is not None:
                    xb = self.normalizer(xb)
                outs.append(self.model(Tensor._wrap(np.ascontiguousarray(xb, dtype=np.float32), False)).data)
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

        info = self.checkpoint.meta.get("data", {})
        # a run stores its data path as given and made absolute: the absolute one works anywhere
        spec = data_spec or info.get("spec_absolute") or info.get("spec")
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
