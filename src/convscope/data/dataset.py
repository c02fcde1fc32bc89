"""In-memory image data sets and their train/test splits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import DataError


class ArrayDataset:
    """Images and integer labels held as two NumPy arrays.

    Args:
        x (ndarray): images, float32 in [0, 1] (before normalisation).
        y (ndarray): integer class labels in ``[0, len(classes))``.
        classes (list of str, optional): class names, index = label. Default: ``'0'``,
            ``'1'``, ... up to the largest label.
        name (str, default 'data'): short name used in messages, e.g. ``'mnist'``.
        source (str, optional): where the data came from (a path or a spec).

    Shape:
        x: (N, C, H, W) (or (N, C, L) series); y: (N,).

    Raises:
        DataError: wrong rank, dtype, length mismatch or a label outside the classes.

    Example:
        >>> ds = ArrayDataset(np.zeros((4, 1, 8, 8), np.float32), np.arange(4) % 2)
        >>> ds.input_shape, ds.num_classes
        ((1, 8, 8), 2)
    """

    def __init__(self, x, y, classes=None, name: str = "data", source: str | None = None):
        x = np.asarray(x)
        y = np.asarray(y)
        where = f"{name}" + (f" ({source})" if source else "")
        if x.ndim not in (3, 4):
            raise DataError(f"{where}: inputs must be images (N, C, H, W) or series (N, C, L), got {x.shape}")
        if x.dtype.kind not in "biuf":
            raise DataError(f"{where}: images must be numeric, got dtype {x.dtype}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(
                f"{where}: labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}"
            )
        if len(x) != len(y):
            raise DataError(f"{where}: {len(x)} images but {len(y)} labels; expected one label per image")
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        if len(self.y) and self.y.min() < 0:
            raise DataError(f"{where}: labels must be >= 0, found {int(self.y.min())}")
        top = int(self.y.max()) + 1 if len(self.y) else 0
        if classes is None:
            classes = [str(i) for i in range(top)]
        self.classes = [str(c) for c in classes]
        if top > len(self.classes):
            raise DataError(f"{where}: label {top - 1} found but only {len(self.classes)} class names given")
        self.name = str(name)
        self.source = source

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        """``(x[index], y[index])``; an int gives one (C, H, W) image and a scalar label."""
        return self.x[index], self.y[index]

    @property
    def num_classes(self) -> int:
        """Number of classes (length of ``classes``)."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple:
        """(C, H, W) of one image ((C, L) of one series)."""
        return tuple(int(d) for d in self.x.shape[1:])

    def subset(self, indices, name: str | None = None) -> ArrayDataset:
        """A new data set with the given rows (copied), same classes and source."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(self.x[indices], self.y[indices], self.classes, name or self.name, self.source)

    def class_counts(self) -> np.ndarray:
        """Images per class, shape (num_classes,)."""
        return np.bincount(self.y, minlength=self.num_classes)

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )


@dataclass
class DataSplits:
    """A training set, a test set and a human note on how they were made.

    Attributes:
        train (ArrayDataset): the data to fit (and to fit normalisation statistics on).
        test (ArrayDataset): held-out data for evaluation.
        note (str): e.g. ``"digits has one split: held out a stratified 20% (360 images)
            as the test set (seed 0)"``; empty when the source had its own splits.
        normalize (bool): whether training should fit and apply the per-channel image
            normaliser (False for series already z-normalised per series).
    """

    train: ArrayDataset
    test: ArrayDataset
    note: str = ""
    normalize: bool = True

    @property
    def task(self) -> str:
        """'segment' when the labels are per-pixel masks, else 'classify'."""
        return "segment" if self.train.y.ndim > 1 else "classify"

    @property
    def classes(self) -> list:
        return self.train.classes

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def input_shape(self) -> tuple:
        return self.train.input_shape

    def __iter__(self):
        return iter((self.train, self.test))


def stratified_split(y, test_fraction: float, seed: int = 0):
    """Seeded stratified hold-out: indices of a train part and a test part.

    The test part has ``ceil(test_fraction * N)`` rows (as scikit-learn's
    ``train_test_split``), shared between classes in proportion to their sizes
    (largest remainders get the extra rows), chosen at random within each class.

    Args:
        y (ndarray): integer labels.
        test_fraction (float): in (0, 1).
        seed (int, default 0): the same seed always gives the same split.

    Shape:
        y: (N,) -> train_idx (N - N_test,), test_idx (N_test,), both sorted int64.

    Returns:
        tuple: ``(train_idx, test_idx)``, disjoint and together covering ``range(N)``.

    Raises:
        DataError: the fraction is outside (0, 1) or leaves an empty part.
    """
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (float, int, np.number))
        or not 0 < test_fraction < 1
    ):
        raise DataError(f"test split must be a fraction between 0 and 1 (exclusive), got {test_fraction!r}")
    n_test = int(math.ceil(test_fraction * n - 1e-9))
    if n_test < 1 or n_test >= n:
        raise DataError(
            f"a test split of {test_fraction:g} of {n} images leaves {n_test} test and "
            f"{n - n_test} training images; expected at least one of each"
        )
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (n_test / n)
    take = np.floor(quota).astype(np.int64)
    short = n_test - int(take.sum())
    if short > 0:  # largest fractional parts first, ties to the lower label (stable sort)
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:short]] += 1
    rng = np.random.default_rng([int(seed), 0, 0, 0x5317])
    test_parts = []
    for label, k in zip(classes, take, strict=True):
        members = np.flatnonzero(y == label)
        test_parts.append(rng.permutation(members)[:k])
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
    mask = np.ones(n, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx


def hold_out(dataset: ArrayDataset, test_fraction: float, seed: int = 0) -> DataSplits:
    """Split a one-split data set into train and test with :func:`stratified_split`.

    Returns:
        DataSplits: with a note such as ``"digits has one split: held out a stratified
        20% (360 images) as the test set (seed 0)"``.
    """
    train_idx, test_idx = stratified_split(dataset.y, test_fraction, seed)
    note = (
        f"{dataset.name} has one split: held out a stratified {test_fraction * 100:g}% "
        f"({len(test_idx)} image{'' if len(test_idx) == 1 else 's'}) as the test set (seed {seed})"
    )
    return DataSplits(dataset.subset(train_idx), dataset.subset(test_idx), note)
