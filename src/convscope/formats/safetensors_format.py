"""safetensors: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.

Reading checks the header against the file before anything is allocated (length within the
file and under :data:`MAX_HEADER`, each tensor's byte range inside the data and matching its
dtype and shape, ranges not overlapping). The ``safetensors`` package's NumPy API
(``pip install convscope[formats]``) then reads the tensors when it is installed and the file
has no bfloat16; otherwise convscope's own reader does (bfloat16 widened to float32 exactly).
Writing takes a flat mapping of names to arrays and string metadata only.
"""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict
from typing import Any

import numpy as np

from .atomic import StrPath, atomic_write
from .errors import CheckpointError
from .torch_read import bfloat16_to_float32
from .tree import as_array

MAX_HEADER = 100_000_000  # the safetensors specification's limit
DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items() if k != "BF16"}


def read_header(path: str) -> tuple[dict, dict, int]:
    """The checked header: (tensors name -> entry, metadata, offset of the data section).

    Raises:
        CheckpointError: a header that is too long for the file, not JSON, or whose entries
            have unknown dtypes, bad shapes or byte ranges outside the data or overlapping.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is truncated: shorter than a safetensors header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise CheckpointError(
                f"{path}: safetensors header claims {n} bytes but the file has {size - 8} after the "
                f"length field (truncated or corrupt)"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - n
    ranges = []
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(
                f"{path}: header entry {name!r} lacks dtype, shape or data_offsets"
            ) from None
        if dtype not in DTYPES:
            raise CheckpointError(
                f"{path}: tensor {name!r} has unknown dtype {dtype!r} (expected one of {', '.join(DTYPES)})"
            )
        if not all(isinstance(d, int) and d >= 0 for d in shape) or not isinstance(begin, int):
            raise CheckpointError(f"{path}: tensor {name!r} has an invalid shape {shape!r} or offsets")
        need = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype]).itemsize
        if not (0 <= begin <= end <= data_size) or end - begin != need:
            raise CheckpointError(
                f"{path}: tensor {name!r} ({dtype}, shape {shape}) needs {need} bytes but its range "
                f"[{begin}, {end}) does not fit the {data_size}-byte data section (truncated or corrupt)"
            )
        ranges.append((begin, end, name))
    ranges.sort()
    for (_b0, e0, n0), (b1, _e1, n1) in zip(ranges, ranges[1:], strict=False):
        if b1 < e0:
            raise CheckpointError(f"{path}: tensors {n0!r} and {n1!r} overlap in the data section")
    return header, dict(metadata), 8 + n


def load(path: StrPath) -> OrderedDict[str, np.ndarray]:
    """Read a .safetensors file as name -> ndarray (file order)."""
    path = os.fspath(path)
    header, _metadata, start = read_header(path)
    has_bf16 = any(entry["dtype"] == "BF16" for entry in header.values())
    try:
        from safetensors.numpy import load_file
    except ImportError:
        load_file = None  # type: ignore[assignment]
    if load_file is not None and not has_bf16:
        loaded = load_file(path)
        return OrderedDict((name, loaded[name]) for name in header)
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    with open(path, "rb") as f:
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            f.seek(start + begin)
            raw = f.read(end - begin)
            array = np.frombuffer(raw, dtype=np.dtype(DTYPES[entry["dtype"]])).reshape(entry["shape"])
            array = array.astype(array.dtype.newbyteorder("="))
            out[name] = bfloat16_to_float32(array) if entry["dtype"] == "BF16" else array
    return out


def metadata(path: StrPath) -> dict:
    """The ``__metadata__`` strings of a .safetensors file."""
    return read_header(os.fspath(path))[1]


def save(obj: Any, path: StrPath, metadata: dict | None = None) -> None:
    """Write a flat mapping name -> array/Tensor as .safetensors, atomically.

    Args:
        obj (mapping): str -> Tensor or ndarray.
        path: destination.
        metadata (dict, optional): str -> str, stored as the header's ``__metadata__``.

    Raises:
        TypeError: ``obj`` is not a flat mapping of arrays, a dtype safetensors lacks, or
            metadata that is not str -> str.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"save: a .safetensors file holds a dict of arrays, got a {type(obj).__name__}")
    arrays = OrderedDict()
    for key, value in obj.items():
        array = as_array(value)
        if not isinstance(key, str) or array is None:
            raise TypeError(
                f"save: a .safetensors file holds only name -> array entries; {key!r} maps to a "
                f"{type(value).__name__} (use .npz or .pth for nested objects)"
            )
        if array.dtype.newbyteorder("=") not in CODES:
            raise TypeError(f"save: {key!r} has dtype {array.dtype}, which safetensors cannot store")
        arrays[key] = np.ascontiguousarray(array).reshape(array.shape)  # keeps 0-d arrays 0-d
    meta = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError("save: safetensors metadata must map str to str")
    header: dict[str, Any] = {"__metadata__": meta} if meta else {}
    offset = 0
    for key, array in arrays.items():
        header[key] = {
            "dtype": CODES[array.dtype.newbyteorder("=")],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)

    def write(f) -> None:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for array in arrays.values():
            f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())

    atomic_write(path, write)
