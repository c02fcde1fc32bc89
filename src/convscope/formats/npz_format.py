"""convscope's own format: one ``.npz`` of named arrays, never pickled.

A flat state dict (name -> array) is stored as it is, one array per key. Anything nested (an
optimizer's ``state_dict()``, ``{"model": ..., "epoch": 3}``) is flattened: each array goes to a
key made of its path joined by ``/`` (``state/0/momentum_buffer``), and a JSON manifest under
``__manifest__`` (UTF-8 bytes as a uint8 array) records the containers, the dict keys with
their types, and the numbers and strings, so :func:`read` rebuilds the same structure.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from .atomic import StrPath, atomic_write
from .errors import CheckpointError
from .tree import SCALARS, as_array, is_flat_arrays, scalar

MANIFEST = "__manifest__"
MANIFEST_FORMAT = "convscope-tree"


def write_arrays(path: StrPath, arrays: dict[str, np.ndarray]) -> None:
    """Write name -> ndarray to ``path`` as an uncompressed .npz, atomically.

    Raises:
        TypeError: an array is not numeric or bool (it would need pickle).
    """
    for key, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"save: value for {key!r} has dtype {array.dtype}; only numeric or bool arrays "
                f"can be saved without pickle"
            )
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def save(obj: Any, path: StrPath) -> None:
    """Save a state dict or a nested structure of arrays, numbers and strings as .npz.

    Raises:
        TypeError: a value is neither an array/Tensor, a container, a number, a string nor None.
    """
    if is_flat_arrays(obj):
        write_arrays(path, OrderedDict((k, np.asarray(as_array(v))) for k, v in obj.items()))
        return
    arrays: dict[str, np.ndarray] = {}
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "root": _encode(obj, "", arrays)}
    arrays[MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    write_arrays(path, arrays)


def _encode(obj: Any, where: str, arrays: dict) -> dict:
    array = as_array(obj)
    if array is not None:
        key = where or "value"
        while key in arrays or key == MANIFEST:
            key += "_"
        arrays[key] = array
        return {"t": "array", "key": key}
    obj = scalar(obj)
    if isinstance(obj, SCALARS):
        return {"t": "value", "v": obj}
    if isinstance(obj, dict):
        items: list[list] = []
        for k, v in obj.items():
            k = scalar(k)
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: dict key {k!r} at {where or 'the top'!r} is not a str or int")
            items.append([k, _encode(v, f"{where}/{k}" if where else str(k), arrays)])
        kind = "odict" if isinstance(obj, OrderedDict) else "dict"
        return {"t": kind, "items": items}
    if isinstance(obj, (list, tuple)):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        values = [_encode(v, f"{where}/{i}" if where else str(i), arrays) for i, v in enumerate(obj)]
        return {"t": kind, "items": values}
    raise TypeError(
        f"save: the value at {where or 'the top'!r} is a {type(obj).__name__}; expected arrays, "
        f"Tensors, dicts, lists, tuples, numbers, strings or None"
    )


def _decode(node: dict, arrays: dict) -> Any:
    kind = node["t"]
    if kind == "array":
        return arrays[node["key"]]
    if kind == "value":
        return node["v"]
    if kind in ("dict", "odict"):
        pairs = [(k, _decode(v, arrays)) for k, v in node["items"]]
        return OrderedDict(pairs) if kind == "odict" else dict(pairs)
    if kind in ("list", "tuple"):
        values = [_decode(v, arrays) for v in node["items"]]
        return tuple(values) if kind == "tuple" else values
    raise KeyError(kind)


def open_npz(path: str, what: str) -> np.lib.npyio.NpzFile:
    """Open ``path`` as an .npz archive without pickle, or raise CheckpointError saying it is not ``what``."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception:  # noqa: BLE001 - any failure to parse means "not an .npz"
        raise CheckpointError(
            f"{path} is not {what}: not an .npz archive of numeric arrays (corrupt, "
            f"truncated or another kind of file)"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} is a single .npy array, not {what} (an .npz of named arrays)")
    return archive


def read_arrays(
    path: StrPath, what: str = "a readable convscope weights file"
) -> OrderedDict[str, np.ndarray]:
    """Every array of an .npz file by name (fresh arrays, no pickle); ``what`` names it in errors.

    Raises:
        CheckpointError: corrupt, truncated, or holding object arrays.
    """
    path = os.fspath(path)
    archive = open_npz(path, what)
    try:
        with archive:
            return OrderedDict((key, np.array(archive[key])) for key in archive.files)
    except Exception:  # noqa: BLE001 - e.g. a truncated member or an object array
        raise CheckpointError(
            f"{path} is corrupt: its arrays could not be read (truncated file, or "
            f"object arrays that would need pickle)"
        ) from None


def load(path: StrPath) -> Any:
    """Read an .npz written by :func:`save` (or any .npz of numeric arrays) with ndarray leaves."""
    arrays = read_arrays(path)
    if MANIFEST not in arrays:
        return arrays
    try:
        manifest = json.loads(arrays.pop(MANIFEST).tobytes().decode("utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(manifest.get("format"))
        return _decode(manifest["root"], arrays)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} has a damaged {MANIFEST} (the nesting record): {err!r}") from None
