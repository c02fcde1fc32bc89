"""CIFAR-10 / CIFAR-100 "python version" batches, read with an unpickler that refuses code.

The official files are Python pickles of dicts holding lists, bytes, ints and
NumPy arrays. A pickle can name any importable callable, so :class:`SafeUnpickler`
resolves only the handful of globals that rebuilding a NumPy array needs and
refuses every other one.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from .dataset import ArrayDataset
from .errors import DataError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

try:  # NumPy >= 2 keeps the implementation in numpy._core; numpy.core is a deprecated alias
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]  # same function, older home


def _latin1_encode(text, encoding="latin1", *rest):
    # Python 3 writes bytes at pickle protocol 2 as _codecs.encode(str, 'latin1'); allow that
    # one harmless use and nothing else of the codecs machinery.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or rest:
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only NumPy array reconstruction.

    Allowed globals: ``numpy.core.multiarray._reconstruct`` (and ``numpy._core``),
    ``numpy.ndarray``, ``numpy.dtype``, and ``_codecs.encode`` restricted to
    ``encode(str, 'latin1')`` (how Python 3 stores bytes at protocol 2). Every other
    global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``.
    """

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None


def safe_load(path: str):
    """Unpickle one CIFAR batch file with :class:`SafeUnpickler` (``encoding='bytes'``).

    Returns:
        object: normally a dict; its bytes keys are decoded to str.

    Raises:
        DataError: unreadable, truncated, not a pickle, or referring to a forbidden global.
    """
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{path}: refused or corrupt pickle ({exc}); expected a CIFAR batch "
            f"holding only dicts, lists and NumPy arrays"
        ) from None
    except Exception as exc:  # truncated files raise EOFError, garbage raises many kinds
        raise DataError(
            f"{path}: cannot read CIFAR batch ({type(exc).__name__}: {exc}); "
            f"expected a complete CIFAR python-version pickle"
        ) from None
    if isinstance(obj, dict):
        obj = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj


def _batch_arrays(path: str, label_key: str):
    batch = safe_load(path)
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected a dict with 'data' and '{label_key}' keys, found {keys}")
    data, labels = batch["data"], batch[label_key]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
    ):
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), found {found}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: '{label_key}' must be a list of ints") from None
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(labels)} labels for {len(data)} images; expected equal counts")
    x = data.reshape(-1, 3, 32, 32).astype(np.float32)  # (N, 3072) -> (N, C, H, W), channel-major
    x *= np.float32(1.0 / 255.0)
    return x, labels


def _class_names(path: str, key: str, count: int, default):
    if not os.path.isfile(path):
        return default
    meta = safe_load(path)
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != count:
        raise DataError(
            f"{path}: expected '{key}' listing {count} class names, found "
            f"{type(names).__name__ if not isinstance(names, list) else len(names)}"
        )
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def resolve_cifar_folder(folder: str, variant: int) -> str:
    """The folder that holds the batch files: ``folder`` itself or its standard sub-folder."""
    sub = "cifar-10-batches-py" if variant == 10 else "cifar-100-python"
    inner = os.path.join(folder, sub)
    return inner if os.path.isdir(inner) else folder


def load_cifar_folder(folder: str, variant: int = 10) -> dict:
    """The splits of a CIFAR python-version folder: ``{'train': ..., 'test': ...}``.

    CIFAR-10 reads ``data_batch_1..5`` (whichever exist, in order) and ``test_batch``,
    labels ``'labels'``, names from ``batches.meta``. CIFAR-100 reads ``train`` and
    ``test``, labels ``'fine_labels'``, names from ``meta``. A missing half is allowed
    (the caller then holds out a test set).

    Shape:
        each split's x is (N, 3, 32, 32) float32 in [0, 1].

    Raises:
        DataError: no batch files, a corrupt or malicious batch, or labels outside the classes.
    """
    if variant not in (10, 100):
        raise ValueError(f"variant must be 10 or 100, got {variant!r}")
    if not os.path.isdir(folder):
        raise DataError(f"CIFAR-{variant} folder not found: {folder}")
    root = resolve_cifar_folder(folder, variant)
    name = f"cifar{variant}"
    if variant == 10:
        numbered = [
            f for f in os.listdir(root) if f.startswith("data_batch_") and f[len("data_batch_") :].isdigit()
        ]
        train_files = sorted(numbered, key=lambda f: int(f[len("data_batch_") :]))
        files = {"train": train_files, "test": ["test_batch"]}
        label_key, expected = "labels", "data_batch_1..5 and/or test_batch"
        classes = _class_names(os.path.join(root, "batches.meta"), "label_names", 10, CIFAR10_CLASSES)
    else:
        files = {"train": ["train"], "test": ["test"]}
        label_key, expected = "fine_labels", "train and/or test"
        classes = _class_names(
            os.path.join(root, "meta"), "fine_label_names", 100, [str(i) for i in range(100)]
        )
    splits = {}
    for split, names in files.items():
        paths = [os.path.join(root, n) for n in names if os.path.isfile(os.path.join(root, n))]
        if not paths:
            continue
        parts = [_batch_arrays(p, label_key) for p in paths]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        if len(y) and (y.min() < 0 or y.max() >= variant):
            raise DataError(
                f"{root}: {split} labels range {y.min()}..{y.max()}; expected "
                f"0..{variant - 1} for CIFAR-{variant}"
            )
        splits[split] = ArrayDataset(x, y, classes, name, folder)
    if not splits:
        hint = ""
        if variant == 10 and os.path.isfile(os.path.join(root, "meta")):
            hint = " (this looks like CIFAR-100: use cifar100:PATH)"
        elif variant == 100 and os.path.isfile(os.path.join(root, "batches.meta")):
            hint = " (this looks like CIFAR-10: use cifar10:PATH)"
        raise DataError(f"{root}: no CIFAR-{variant} batch files; expected {expected}{hint}")
    return splits
