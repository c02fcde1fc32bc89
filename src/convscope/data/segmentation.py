"""Segmentation data: images with one class index per pixel.

Two sources:

* ``mnist-seg:PATH`` builds 64x64 canvases holding 1-3 non-overlapping MNIST digits from the
  IDX files in PATH; the mask is ``digit class + 1`` where the digit's ink is >= 128 (of 255)
  and 0 (background) elsewhere. Training canvases use only training-split digits, test canvases
  only held-out digits (with only one split of files, the seeded stratified hold-out that
  classification uses splits the digits first). Options after ``?``:
  ``mnist-seg:PATH?train=400&test=100``.
* ``segfolder:PATH`` reads ``PATH/images/NAME.png`` and ``PATH/masks/NAME.png`` (class indices
  in a palette or grayscale PNG; 255 = unlabeled by default), or ``PATH/train/...`` and
  ``PATH/test/...`` with that layout.
"""

from __future__ import annotations

import os

import numpy as np

from .dataset import ArrayDataset, DataSplits, stratified_split
from .errors import DataError

CANVAS = 64
DIGIT = 28
INK = 128
DEFAULT_COUNTS = {"train": 4000, "test": 1000}


class SegmentationDataset(ArrayDataset):
    """Images and their per-pixel class masks.

    Args:
        x (ndarray): images (N, C, H, W), float in [0, 1].
        masks (ndarray): class indices (N, H, W); ``ignore_index`` marks unlabeled pixels.
        classes (list of str): class names, index = mask value.
        name, source: as for :class:`ArrayDataset`.
        ignore_index (int, default 255): the mask value that carries no label.

    Raises:
        DataError: shapes that do not match, or mask values outside the classes.
    """

    def __init__(self, x, masks, classes, name="segmentation", source=None, ignore_index: int = 255):
        x = np.asarray(x)
        masks = np.asarray(masks)
        where = f"{name}" + (f" ({source})" if source else "")
        if x.ndim != 4 or masks.shape != (x.shape[0],) + x.shape[2:]:
            raise DataError(
                f"{where}: expected images (N, C, H, W) and masks (N, H, W) of the same N, H, W; "
                f"got {x.shape} and {masks.shape}"
            )
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = np.ascontiguousarray(masks, dtype=np.int64)
        self.classes = [str(c) for c in classes]
        self.ignore_index = int(ignore_index)
        labelled = self.y[self.y != self.ignore_index]
        if labelled.size and (labelled.min() < 0 or labelled.max() >= len(self.classes)):
            raise DataError(
                f"{where}: mask values must be in [0, {len(self.classes) - 1}] or the ignore index "
                f"{self.ignore_index}; found {int(labelled.min())}..{int(labelled.max())}"
            )
        self.name, self.source = str(name), source
        # mnist-seg: (canvas, digit index in the source IDX file, top, left) per placed digit
        self.placed: np.ndarray | None = None

    def subset(self, indices, name: str | None = None) -> SegmentationDataset:
        indices = np.asarray(indices, dtype=np.int64)
        return SegmentationDataset(
            self.x[indices], self.y[indices], self.classes, name or self.name, self.source, self.ignore_index
        )

    def class_counts(self) -> np.ndarray:
        """Labelled pixels per class, shape (num_classes,)."""
        return np.bincount(self.y[self.y != self.ignore_index], minlength=self.num_classes)


def parse_options(path: str, allowed: dict) -> tuple:
    """Split ``PATH?key=value&...`` into (PATH, {key: int}); a path that exists as written wins."""
    if os.path.exists(path) or "?" not in path:
        return path, dict(allowed)
    base, _, query = path.rpartition("?")
    values = dict(allowed)
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key not in allowed or not value.isdigit() or int(value) < 1:
            raise DataError(
                f"data option {item!r}: expected one of {', '.join(f'{k}=N' for k in allowed)} "
                f"with a positive integer N"
            )
        values[key] = int(value)
    return base, values


def compose_canvases(digits: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple:
    """Place 1-3 randomly chosen digits on each of ``count`` empty canvases, without overlap.

    Each digit's 28x28 box is placed at a random position whose box does not intersect the boxes
    already on the canvas (rejection sampling; a canvas keeps the digits that fit in 50 tries).

    Args:
        digits (ndarray): uint8 digit images (N, 28, 28), 0..255.
        labels (ndarray): their classes (N,), 0..9.
        count (int): canvases to make.
        seed (int): the same seed gives the same canvases.

    Shape:
        returns x (count, 1, 64, 64) float32 in [0, 1], masks (count, 64, 64) int64 and
        placed (P, 4) int64 rows (canvas, digit index, top, left), one per digit drawn.
    """
    rng = np.random.default_rng([int(seed), int(count), 0x5E6])
    x = np.zeros((count, 1, CANVAS, CANVAS), dtype=np.float32)
    masks = np.zeros((count, CANVAS, CANVAS), dtype=np.int64)
    span = CANVAS - DIGIT + 1
    placed = []
    for n in range(count):
        boxes: list = []
        wanted = int(rng.integers(1, 4))
        for _ in range(50):
            if len(boxes) == wanted:
                break
            top, left = (int(v) for v in rng.integers(0, span, size=2))
            if any(abs(top - t) < DIGIT and abs(left - x0) < DIGIT for t, x0 in boxes):
                continue
            boxes.append((top, left))
            k = int(rng.integers(0, len(digits)))
            placed.append((n, k, top, left))
            ink = digits[k]
            window = (slice(top, top + DIGIT), slice(left, left + DIGIT))
            x[n, 0][window] = ink.astype(np.float32) * np.float32(1.0 / 255.0)
            masks[n][window] = np.where(ink >= INK, labels[k] + 1, 0)
    return x, masks, np.array(placed, dtype=np.int64).reshape(-1, 4)


def load_mnist_seg(path: str, test_split: float = 0.2, seed: int = 0) -> DataSplits:
    """The mnist-seg splits; see the module docstring.

    Raises:
        DataError: missing IDX files, bad options.
    """
    from .idx import load_idx_folder

    folder, counts = parse_options(path, DEFAULT_COUNTS)
    splits = load_idx_folder(folder)

    def raw(ds):
        return np.rint(ds.x[:, 0] * 255.0).astype(np.uint8), ds.y

    notes = []
    if "train" in splits and "test" in splits:
        train_digits, test_digits = raw(splits["train"]), raw(splits["test"])
        origin = {"train": np.arange(len(splits["train"])), "test": np.arange(len(splits["test"]))}
    else:
        (only,) = splits.values()
        train_idx, test_idx = stratified_split(only.y, test_split, seed)
        digits, labels = raw(only)
        train_digits = digits[train_idx], labels[train_idx]
        test_digits = digits[test_idx], labels[test_idx]
        origin = {"train": train_idx, "test": test_idx}
        notes.append(
            f"{folder} has one split of digits: held out a stratified {test_split * 100:g}% "
            f"({len(test_idx)} digits) for the test canvases (seed {seed})"
        )
    classes = ["background"] + [str(i) for i in range(10)]
    made = {}
    for split, (digits, labels), salt in (("train", train_digits, 1), ("test", test_digits, 2)):
        x, masks, placed = compose_canvases(digits, labels, counts[split], seed * 4 + salt)
        made[split] = SegmentationDataset(x, masks, classes, "mnist-seg", folder, ignore_index=255)
        placed[:, 1] = origin[split][placed[:, 1]]  # index into the source split's IDX file
        made[split].placed = placed
    notes.append(f"mnist-seg: {counts['train']} training and {counts['test']} test canvases of 64x64")
    return DataSplits(made["train"], made["test"], "; ".join(notes))


def _read_mask(path: str) -> np.ndarray:
    from .preprocess import open_image

    img = open_image(path)
    if img.mode in ("P", "L", "I", "I;16", "1"):
        return np.asarray(img, dtype=np.int64)  # palette index or grey value = class index
    raise DataError(
        f"{path}: mask image has mode {img.mode}; expected class indices in a palette (P) or "
        f"grayscale (L) PNG"
    )


def _read_pairs(folder: str, channels: int | None, ignore_index: int) -> tuple:
    from .folder import IMAGE_EXTENSIONS, _visible
    from .preprocess import image_to_array, is_color, open_image

    image_dir, mask_dir = os.path.join(folder, "images"), os.path.join(folder, "masks")
    for d in (image_dir, mask_dir):
        if not os.path.isdir(d):
            raise DataError(f"{folder}: no {os.path.basename(d)}/ folder; expected images/ and masks/")
    masks_by_stem = {os.path.splitext(n)[0]: n for n in _visible(os.listdir(mask_dir))}
    names = [n for n in _visible(os.listdir(image_dir)) if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not names:
        raise DataError(f"{image_dir}: no image files")
    missing = [n for n in names if os.path.splitext(n)[0] not in masks_by_stem]
    if missing:
        raise DataError(f"{image_dir}/{missing[0]} has no mask in {mask_dir} (expected the same file name)")
    imgs = [open_image(os.path.join(image_dir, n)) for n in names]
    if channels is None:
        channels = 3 if any(is_color(i) for i in imgs) else 1
    x, y = [], []
    for name, img in zip(names, imgs, strict=True):
        mask = _read_mask(os.path.join(mask_dir, masks_by_stem[os.path.splitext(name)[0]]))
        if mask.shape != (img.size[1], img.size[0]):
            raise DataError(
                f"{mask_dir}/{name}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                f"{img.size[0]}x{img.size[1]}; expected the same size"
            )
        x.append(image_to_array(img, channels))
        y.append(mask)
    if len({a.shape for a in x}) > 1:
        raise DataError(f"{image_dir}: images differ in size; expected one size for all")
    return np.stack(x), np.stack(y), channels


def load_segfolder(path: str, test_split: float = 0.2, seed: int = 0, ignore_index: int = 255, mode=None):
    """``segfolder:PATH`` splits; one split is divided by a seeded random hold-out.

    Raises:
        DataError: missing folders, unmatched files, masks of another size or bad mode.
    """
    from .folder import MODES

    channels = MODES.get(str(mode).lower()) if mode else None
    parts = {s: os.path.join(path, s) for s in ("train", "test")}
    if all(os.path.isdir(os.path.join(p, "images")) for p in parts.values()):
        xtr, ytr, channels = _read_pairs(parts["train"], channels, ignore_index)
        xte, yte, _ = _read_pairs(parts["test"], channels, ignore_index)
        note = ""
    else:
        x, y, _ = _read_pairs(path, channels, ignore_index)
        if len(x) < 2:
            raise DataError(f"{path}: {len(x)} image; expected at least 2 to hold out a test set")
        order = np.random.default_rng([int(seed), 0x5E7]).permutation(len(x))
        n_test = max(1, int(np.ceil(test_split * len(x) - 1e-9)))
        test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
        xtr, ytr, xte, yte = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
        note = f"{path} has one split: held out {n_test} of {len(x)} images as the test set (seed {seed})"
    labelled = np.concatenate([ytr[ytr != ignore_index], yte[yte != ignore_index]])
    top = int(labelled.max()) + 1 if labelled.size else 1
    classes = [str(i) for i in range(max(top, 2))]
    name = os.path.basename(os.path.normpath(path))
    return DataSplits(
        SegmentationDataset(xtr, ytr, classes, name, path, ignore_index),
        SegmentationDataset(xte, yte, classes, name, path, ignore_index),
        note,
    )
