"""MNIST-format IDX files (plain or gzip), parsed and checked without any third-party reader."""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from .dataset import ArrayDataset
from .errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

# (split, prefix) in the order they are looked for; 'test' is an alias some mirrors use
_PREFIXES = (("train", "train"), ("test", "t10k"), ("test", "test"))


def _name_variants(prefix: str, kind: str) -> list:
    base = [
        f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",
        f"{prefix}-{kind}.idx{3 if kind == 'images' else 1}-ubyte",
    ]
    return [b + ext for b in base for ext in ("", ".gz")]


def find_idx_files(folder: str) -> dict:
    """The IDX files present in ``folder``: ``{'train'|'test': (images_path, labels_path)}``.

    A split counts only if both its images and labels file exist (each may be ``.gz``).

    Raises:
        DataError: an images file is present without its labels file, or the reverse.
    """
    found = {}
    for split, prefix in _PREFIXES:
        if split in found:
            continue
        paths = {}
        for kind in ("images", "labels"):
            hits = [n for n in _name_variants(prefix, kind) if os.path.isfile(os.path.join(folder, n))]
            if hits:
                paths[kind] = os.path.join(folder, hits[0])
        if len(paths) == 1:
            ((have, path),) = paths.items()
            missing = "labels" if have == "images" else "images"
            raise DataError(
                f"{path} has no matching {missing} file; expected "
                f"{_name_variants(prefix, missing)[0]}[.gz] in {folder}"
            )
        if paths:
            found[split] = (paths["images"], paths["labels"])
    return found


def read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, checking magic number and size.

    Args:
        path (str): the file; a name ending in ``.gz`` is decompressed.
        expected_magic (int): 2051 for images, 2049 for labels.

    Shape:
        images: (N, rows, cols) uint8; labels: (N,) uint8.

    Returns:
        ndarray: uint8, read-only view of the file's bytes.

    Raises:
        DataError: unreadable, corrupt gzip, wrong magic number, truncated or oversized.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: cannot read IDX file ({exc}); expected a complete "
            f"{'gzip-compressed ' if path.endswith('.gz') else ''}IDX file"
        ) from None
    if len(raw) < 4:
        raise DataError(f"{path}: file is {len(raw)} bytes; expected an IDX header of at least 4")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        what = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise DataError(
            f"{path}: magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"for an IDX {what} file of unsigned bytes"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes); expected {header}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: file {state}: {len(raw)} bytes; expected {expected} for "
            f"dimensions {' x '.join(map(str, dims))}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_pair(images_path: str, labels_path: str):
    """Images and labels of one split, checked against each other.

    Shape:
        returns x (N, 1, rows, cols) float32 in [0, 1] and y (N,) int64.

    Raises:
        DataError: any problem :func:`read_idx` finds, or counts that differ.
    """
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels but {images_path} has "
            f"{len(images)} images; expected equal counts"
        )
    x = images[:, None, :, :].astype(np.float32)  # (N, rows, cols) -> (N, 1, rows, cols)
    x *= np.float32(1.0 / 255.0)
    return x, labels.astype(np.int64)


def load_idx_folder(folder: str, name: str = "mnist") -> dict:
    """Every split of an MNIST-format folder as ArrayDatasets: ``{'train': ..., 'test': ...}``.

    Class names are ``'0'``, ``'1'``, ... up to the largest label in any split.

    Raises:
        DataError: no complete IDX pair in the folder, or any file problem.
    """
    if not os.path.isdir(folder):
        raise DataError(f"MNIST folder not found: {folder}; expected a folder of IDX files")
    pairs = find_idx_files(folder)
    if not pairs:
        raise DataError(
            f"{folder}: no MNIST IDX files; expected train-images-idx3-ubyte and "
            f"train-labels-idx1-ubyte and/or t10k-images-idx3-ubyte and "
            f"t10k-labels-idx1-ubyte (each optionally .gz)"
        )
    arrays = {split: read_idx_pair(*paths) for split, paths in pairs.items()}
    top = max((int(y.max()) for _, y in arrays.values() if len(y)), default=-1) + 1
    classes = [str(i) for i in range(top)]
    return {split: ArrayDataset(x, y, classes, name, folder) for split, (x, y) in arrays.items()}
