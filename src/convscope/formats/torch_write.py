"""Writing PyTorch zip checkpoints without PyTorch, readable by ``torch.load(path, weights_only=True)``.

The pickle is emitted opcode by opcode (protocol 2) rather than through ``pickle.Pickler``,
which would have to import ``torch`` to name ``torch._utils._rebuild_tensor_v2``. Every array
becomes one contiguous storage record ``archive/data/<i>``; the object tree may hold dicts
(written as ``collections.OrderedDict`` when ordered), lists, tuples, numbers, strings, None.
"""

from __future__ import annotations

import struct
import zipfile
from collections import OrderedDict
from typing import IO, Any

import numpy as np

from .atomic import StrPath, atomic_write
from .tree import as_array, scalar

STORAGE_NAMES = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}


class _Emitter:
    """Protocol-2 pickle opcodes for the objects a state dict contains."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.storages: list[np.ndarray] = []

    def global_(self, module: str, name: str) -> None:
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def string(self, text: str) -> None:
        raw = text.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE

    def integer(self, value: int) -> None:
        if -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)  # BININT
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(raw)]) + raw  # LONG1

    def tuple_(self, values) -> None:
        self.out += b"("  # MARK
        for v in values:
            self.value(v, "")
        self.out += b"t"  # TUPLE

    def value(self, obj: Any, where: str) -> None:
        array = as_array(obj)
        if array is not None:
            self.tensor(array, where)
            return
        obj = scalar(obj)
        if obj is None:
            self.out += b"N"
        elif obj is True or obj is False:
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, int):
            self.integer(obj)
        elif isinstance(obj, float):
            self.out += b"G" + struct.pack(">d", obj)  # BINFLOAT
        elif isinstance(obj, str):
            self.string(obj)
        elif isinstance(obj, dict):
            if isinstance(obj, OrderedDict) or where == "":
                self.global_("collections", "OrderedDict")
                self.out += b")R"  # EMPTY_TUPLE, REDUCE
            else:
                self.out += b"}"  # EMPTY_DICT
            if obj:
                self.out += b"("
                for k, v in obj.items():
                    self.value(scalar(k), where)
                    self.value(v, f"{where}.{k}")
                self.out += b"u"  # SETITEMS
        elif isinstance(obj, list):
            self.out += b"]"
            if obj:
                self.out += b"("
                for i, v in enumerate(obj):
                    self.value(v, f"{where}.{i}")
                self.out += b"e"  # APPENDS
        elif isinstance(obj, tuple):
            self.out += b"("
            for i, v in enumerate(obj):
                self.value(v, f"{where}.{i}")
            self.out += b"t"
        else:
            raise TypeError(
                f"save: the value at {where.lstrip('.') or 'the top'!r} is a {type(obj).__name__}; a "
                f".pth file holds arrays, Tensors, dicts, lists, tuples, numbers, strings or None"
            )

    def tensor(self, array: np.ndarray, where: str) -> None:
        name = STORAGE_NAMES.get(array.dtype.name)
        if name is None:
            raise TypeError(
                f"save: the array at {where.lstrip('.')!r} has dtype {array.dtype}; a .pth file takes "
                f"{', '.join(STORAGE_NAMES)}"
            )
        array = np.ascontiguousarray(array).reshape(array.shape)  # keeps 0-d arrays 0-d
        key = str(len(self.storages))
        self.storages.append(array)
        strides: list[int] = []
        step = 1
        dims: list[int] = list(map(int, array.shape))
        for d in reversed(dims):
            strides.insert(0, step)
            step *= d
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"("  # args of _rebuild_tensor_v2
        self.out += b"("  # persistent id ('storage', type, key, location, numel)
        self.string("storage")
        self.global_("torch", name)
        self.string(key)
        self.string("cpu")
        self.integer(int(array.size))
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.integer(0)
        self.tuple_(dims)
        self.tuple_(strides)
        self.out += b"\x89"  # requires_grad False
        self.global_("collections", "OrderedDict")
        self.out += b")R"  # backward hooks: OrderedDict()
        self.out += b"tR"  # TUPLE, REDUCE


def save(obj: Any, path: StrPath) -> None:
    """Write ``obj`` (a state dict or a nested structure) as a PyTorch zip checkpoint, atomically.

    Raises:
        TypeError: a value a .pth file cannot hold (e.g. an object array, a set, a class).
    """
    emitter = _Emitter()
    emitter.value(obj, "")
    emitter.out += b"."  # STOP
    pickled = bytes(emitter.out)

    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", pickled)
            z.writestr("archive/byteorder", "little")
            for i, array in enumerate(emitter.storages):
                z.writestr(f"archive/data/{i}", array.astype(array.dtype.newbyteorder("<")).tobytes())
            z.writestr("archive/version", "3\n")

    atomic_write(path, write)
