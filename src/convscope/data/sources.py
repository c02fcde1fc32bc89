"""Data-set specs (``digits``, ``mnist:PATH``, ...) and the loaders behind them.

Nothing here downloads: every source is a file or folder already on disk, or
scikit-learn's bundled ``digits``.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .cifar import load_cifar_folder, resolve_cifar_folder
from .dataset import ArrayDataset, DataSplits, hold_out
from .errors import DataError
from .folder import MODES, load_image_folder
from .idx import find_idx_files, load_idx_folder
from .preprocess import resize_array

KINDS = ("digits", "mnist", "cifar10", "cifar100", "folder", "npz", "mnist-seg", "segfolder", "ucr")
# kinds whose text after the colon is not (only) a path: options after '?', or a data-set name
_OPTION_KINDS = ("mnist-seg", "segfolder", "ucr")
_ALIASES = {
    "idx": "mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "images": "folder",
    "imagefolder": "folder",
}
VALID_SPECS = (
    "digits, mnist:PATH, cifar10:PATH, cifar100:PATH, folder:PATH, npz:PATH, mnist-seg:PATH, "
    "segfolder:PATH, ucr:NAME, ucr:PATH or a path"
)


def load_digits() -> ArrayDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), values 0..16 scaled to [0, 1].

    Shape:
        x (1797, 1, 8, 8) float32, y (1797,) int64.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - scikit-learn is in the 'app' extra
        raise DataError(
            "the digits data set needs scikit-learn; expected it installed "
            "(pip install 'convscope[app]'), found it missing"
        ) from None
    bunch = sk_load_digits()
    x = (bunch.images[:, None, :, :] / 16.0).astype(np.float32)  # (N, 8, 8) -> (N, 1, 8, 8)
    return ArrayDataset(
        x,
        bunch.target.astype(np.int64),
        [str(i) for i in range(10)],
        "digits",
        "sklearn.datasets.load_digits",
    )


def _images_nchw(x, path: str, key: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        pass  # already (N, C, H, W)
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise DataError(
            f"{path}: '{key}' has shape {x.shape}; expected (N, H, W), (N, C, H, W) "
            f"or (N, H, W, C) with C 1 or 3"
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    if x.dtype.kind in "biu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{path}: integer '{key}' ranges {x.min()}..{x.max()}; expected 0..255")
        return x.astype(np.float32) * np.float32(1.0 / 255.0 if x.dtype.kind != "b" else 1.0)
    if x.dtype.kind != "f":
        raise DataError(f"{path}: '{key}' has dtype {x.dtype}; expected uint8 0..255 or float 0..1")
    if x.size and not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise DataError(
            f"{path}: float '{key}' ranges {np.nanmin(x):g}..{np.nanmax(x):g}; expected "
            f"finite values in [0, 1] (or store uint8 0..255)"
        )
    return x.astype(np.float32)


def _labels(y, path: str, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and np.any(y != np.round(y))):
        raise DataError(
            f"{path}: '{key}' has shape {y.shape} dtype {y.dtype}; expected 1-D integer class labels"
        )
    return y.astype(np.int64)


def load_npz(path: str) -> dict:
    """Splits of an ``.npz`` file: ``x``/``y`` (one split) or ``x_train``/``y_train``/``x_test``/
    ``y_test``; optional ``classes`` (strings). Read with ``allow_pickle=False``.

    Raises:
        DataError: not an .npz, object arrays, missing keys, bad shapes or ranges.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc}); expected a NumPy .npz archive") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array; expected an .npz with x and y arrays")
    with archive:
        keys = set(archive.files)
        if {"x", "y"} <= keys:
            wanted = {"all": ("x", "y")}
        else:
            wanted = {s: (f"x_{s}", f"y_{s}") for s in ("train", "test") if f"x_{s}" in keys}
        missing = [k for pair in wanted.values() for k in pair if k not in keys]
        if not wanted or missing:
            raise DataError(
                f"{path}: arrays {sorted(keys)}; expected x and y, or x_train, y_train, x_test and y_test"
            )
        try:
            raw = {s: (archive[kx], archive[ky]) for s, (kx, ky) in wanted.items()}
            names = archive["classes"] if "classes" in keys else None
        except ValueError as exc:  # object arrays refuse to load without pickle
            raise DataError(f"{path}: {exc}; expected numeric arrays (and strings for classes)") from None
    arrays = {}
    for split, (x, y) in raw.items():
        kx, ky = wanted[split]
        x, y = _images_nchw(x, path, kx), _labels(y, path, ky)
        if len(x) != len(y):
            raise DataError(f"{path}: {len(x)} images in '{kx}' but {len(y)} labels in '{ky}'")
        arrays[split] = (x, y)
    shapes = {x.shape[1:] for x, _ in arrays.values()}
    if len(shapes) > 1:
        raise DataError(f"{path}: train and test images differ in shape {sorted(shapes)}")
    if names is not None:
        if names.dtype.kind not in "US" or names.ndim != 1:
            raise DataError(f"{path}: 'classes' has dtype {names.dtype}; expected a 1-D string array")
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    else:
        top = max((int(y.max()) for _, y in arrays.values() if len(y)), default=-1) + 1
        classes = [str(i) for i in range(top)]
    name = os.path.splitext(os.path.basename(path))[0]
    return {s: ArrayDataset(x, y, classes, name, path) for s, (x, y) in arrays.items()}


def detect_kind(path: str) -> str:
    """Guess the kind of an existing path: mnist, npz, cifar10, cifar100 or folder."""
    if os.path.isfile(path):
        if path.lower().endswith(".npz"):
            return "npz"
        raise DataError(f"{path} is a file; expected a folder or an .npz file (valid specs: {VALID_SPECS})")
    if find_idx_files(path):
        return "mnist"
    c10, c100 = resolve_cifar_folder(path, 10), resolve_cifar_folder(path, 100)
    if any(os.path.isfile(os.path.join(c10, f)) for f in ("data_batch_1", "test_batch")):
        return "cifar10"
    if os.path.isfile(os.path.join(c100, "meta")) and any(
        os.path.isfile(os.path.join(c100, f)) for f in ("train", "test")
    ):
        return "cifar100"
    return "folder"


def parse_spec(spec) -> tuple:
    """Split a data spec into ``(kind, path)``.

    Args:
        spec (str): 'digits', 'mnist:PATH', 'cifar10:PATH', 'cifar100:PATH', 'folder:PATH',
            'npz:PATH', or an existing path whose kind is detected (folder of IDX files ->
            mnist, .npz -> npz, folder with data_batch_1 -> cifar10, else folder).

    Returns:
        tuple: ``(kind, path)``; path is None for digits.

    Raises:
        DataError: unknown kind (the valid specs are listed) or a path that does not exist.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise DataError(f"data spec must be a string like {VALID_SPECS}; got {type(spec).__name__}")
    spec = os.fspath(spec).strip()
    if spec.lower() == "digits":
        return "digits", None
    kind, sep, rest = spec.partition(":")
    key = _ALIASES.get(kind.lower(), kind.lower())
    if sep and key in _OPTION_KINDS:
        if not rest:
            raise DataError(f"data spec {spec!r} has no {'name or path' if key == 'ucr' else 'path'}")
        return key, os.path.expanduser(rest)
    if sep and key in KINDS:
        if key == "digits":
            raise DataError(f"data spec {spec!r}: digits takes no path; expected just 'digits'")
        path = os.path.expanduser(rest)
        if not path:
            raise DataError(f"data spec {spec!r} has no path; expected {key}:PATH")
        want = "an .npz file" if key == "npz" else "a folder"
        if not os.path.exists(path):
            raise DataError(f"data spec {spec!r}: {path} does not exist; expected {want}")
        if os.path.isdir(path) == (key == "npz"):
            raise DataError(
                f"data spec {spec!r}: {path} is a {'folder' if key == 'npz' else 'file'}; expected {want}"
            )
        return key, path
    path = os.path.expanduser(spec)
    if spec and os.path.exists(path):
        return detect_kind(path), path
    if sep and len(kind) > 1 and "/" not in kind and "\\" not in kind:
        raise DataError(f"unknown data kind {kind!r} in {spec!r}; valid specs: {VALID_SPECS}")
    raise DataError(
        f"data spec {spec!r} is neither a known kind nor an existing path; valid specs: {VALID_SPECS}"
    )


def _convert(ds: ArrayDataset, channels, size) -> ArrayDataset:
    x = ds.x
    if channels == 1 and x.shape[1] == 3:  # ITU-R 601 luma, the weights of Pillow's convert('L')
        w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        x = np.einsum("nchw,c->nhw", x, w)[:, None]  # (N, 3, H, W) -> (N, 1, H, W)
    elif channels == 3 and x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)  # (N, 1, H, W) -> (N, 3, H, W)
    if size is not None:
        x = resize_array(x, size)
    return ds if x is ds.x else ArrayDataset(x, ds.y, ds.classes, ds.name, ds.source)


def load_dataset(
    spec, test_split: float = 0.2, seed: int = 0, image_size=None, mode: str = "auto", ignore_index: int = 255
) -> DataSplits:
    """Load a data set by spec as train and test splits, images in [0, 1].

    Args:
        spec (str): see :func:`parse_spec`.
        test_split (float, default 0.2): fraction held out (stratified, seeded) as the test
            set when the source has only one split.
        seed (int, default 0): seed of that hold-out.
        image_size (int or (H, W), optional): resize every image (bilinear).
        mode (str, default 'auto'): 'gray', 'rgb' or 'auto' (keep the source's channels;
            for image folders RGB if any image is colour).
        ignore_index (int, default 255): mask value of unlabeled pixels (segfolder).

    Shape:
        splits.train.x: (N_train, C, H, W) float32; splits.test.x: (N_test, C, H, W).

    Returns:
        DataSplits: ``train``, ``test`` and a ``note`` on any hold-out or choice made.

    Raises:
        DataError: a bad spec, a missing or malformed source, or a bad option.

    Example:
        >>> splits = load_dataset('digits')
        >>> splits.train.x.shape, splits.test.x.shape
        ((1437, 1, 8, 8), (360, 1, 8, 8))
    """
    kind, path = parse_spec(spec)
    if str(mode).lower() not in MODES:
        raise DataError(f"image mode must be one of auto, gray, rgb; got {mode!r}")
    if kind == "mnist-seg":
        from .segmentation import load_mnist_seg

        return load_mnist_seg(path, test_split, seed)
    if kind == "segfolder":
        from .segmentation import load_segfolder

        return load_segfolder(path, test_split, seed, ignore_index, None if mode == "auto" else mode)
    if kind == "ucr":
        from .ucr import load_ucr

        return load_ucr(path)
    notes = []
    if kind == "folder":
        splits, note = load_image_folder(path, image_size, mode)
        notes.append(note)
    else:
        if kind == "digits":
            splits = {"all": load_digits()}
        elif kind == "mnist":
            splits = load_idx_folder(path)
        elif kind in ("cifar10", "cifar100"):
            splits = load_cifar_folder(path, 10 if kind == "cifar10" else 100)
        else:
            splits = load_npz(path)
        channels = MODES[str(mode).lower()]
        splits = {s: _convert(ds, channels, image_size) for s, ds in splits.items()}
    if len(splits) == 1:
        ((only_split, ds),) = splits.items()
        result = hold_out(ds, test_split, seed)
        if only_split != "all":
            result.note = result.note.replace("one split:", f"one split ({only_split} files only):", 1)
        notes.insert(0, result.note)
    else:
        result = DataSplits(splits["train"], splits["test"])
    result.note = "; ".join(n for n in notes if n)
    return result


def few_images_warning(splits: DataSplits) -> str:
    """A warning when a split is too small to train on or to measure with (a 2-image folder
    trains on 1 image and tests on 1)."""
    k, n_train, n_test = splits.num_classes, len(splits.train), len(splits.test)
    if n_train >= 10 * k and n_test >= k:
        return ""
    return (
        f"warning: only {n_train} training and {n_test} test image{'' if n_test == 1 else 's'} "
        f"for {k} classes: too few to learn from or to measure accuracy (expected at least "
        f"{10 * k} training images and one test image per class)"
    )


def absolute_spec(spec) -> str:
    """The spec with its path made absolute ('mnist:data/mnist' -> 'mnist:/home/me/data/mnist'),
    so a run can be evaluated or resumed from any directory; 'digits' stays 'digits'."""
    kind, path = parse_spec(spec)
    return kind if path is None else f"{kind}:{os.path.abspath(path)}"


def spec_slug(spec) -> str:
    """A file-name-safe name of a data spec: 'digits', 'mnist-mnist-1a2b3c' (kind, folder name
    and a short hash of the absolute path, so two folders of the same name differ)."""
    import hashlib

    text = os.fspath(spec).strip()
    kind, sep, rest = text.partition(":")
    path = rest if sep and kind.lower() in KINDS + tuple(_ALIASES) else (text if text != "digits" else "")
    if not path:
        return "".join(ch if ch.isalnum() else "_" for ch in text.lower()) or "data"
    full = os.path.abspath(os.path.expanduser(path))
    base = os.path.splitext(os.path.basename(full.rstrip(os.sep)))[0] or "data"
    digest = hashlib.sha1(full.encode("utf-8")).hexdigest()[:6]
    label = kind.lower() if sep else "data"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{label}-{base}")
    return f"{safe}-{digest}"
