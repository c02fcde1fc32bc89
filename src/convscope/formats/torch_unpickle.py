"""A restricted unpickler for the pickles inside PyTorch files: only an allowlist of globals.

``torch.save`` pickles the object tree and stores each tensor's bytes separately; the pickle
names a few globals (``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``,
``collections.OrderedDict``, ...). Here every global is looked up in :data:`ALLOWED`, which
maps it to convscope's own stand-in; any other name raises :class:`UnsafeCheckpointError`
before anything is imported or called, so no code from the file runs. Before unpickling, the
opcode stream is scanned and refused if it uses an opcode outside :data:`OPCODES`.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .errors import CheckpointError, UnsafeCheckpointError

# opcodes that plain data and PyTorch's reduce calls need (no INST/OBJ/EXT*/NEWOBJ_EX/buffers)
OPCODES = frozenset(
    """PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG
    LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE
    BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 EMPTY_DICT DICT SETITEM SETITEMS EMPTY_LIST LIST
    APPEND APPENDS EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_SET ADDITEMS FROZENSET GLOBAL
    STACK_GLOBAL REDUCE BUILD NEWOBJ PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET PERSID
    BINPERSID""".split()
)


@dataclass(frozen=True)
class StorageType:
    """A ``torch.<Name>Storage`` class named in a pickle: which dtype its bytes hold."""

    name: str
    dtype: np.dtype  # as stored in the file (bfloat16 as its uint16 bit patterns)
    bfloat16: bool = False


def _storage_types() -> dict[str, StorageType]:
    table = {
        "FloatStorage": "float32",
        "DoubleStorage": "float64",
        "HalfStorage": "float16",
        "LongStorage": "int64",
        "IntStorage": "int32",
        "ShortStorage": "int16",
        "CharStorage": "int8",
        "ByteStorage": "uint8",
        "BoolStorage": "bool",
        "UntypedStorage": "uint8",
    }
    out = {name: StorageType(name, np.dtype(dtype)) for name, dtype in table.items()}
    out["BFloat16Storage"] = StorageType("BFloat16Storage", np.dtype(np.uint16), bfloat16=True)
    return out


STORAGE_TYPES = _storage_types()
TORCH_DTYPES = {
    "float32": "float32",
    "float": "float32",
    "float64": "float64",
    "double": "float64",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "float32",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


class Storage:
    """One storage of a PyTorch file: a flat array, possibly shared by several tensors."""

    def __init__(self, array: np.ndarray, key: str):
        self.array = array
        self.key = key


def rebuild_tensor(
    storage: Storage, offset: int, size: Sequence[int], stride: Sequence[int], *_rest: object
) -> np.ndarray:
    """``torch._utils._rebuild_tensor(_v2)``: a strided view into ``storage`` (memory shared).

    Raises:
        CheckpointError: the tensor reaches past the end of its storage.
    """
    if not isinstance(storage, Storage):
        raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
        raise CheckpointError(
            f"a tensor has an invalid layout: size {size}, stride {stride}, offset {offset}"
        )
    flat = storage.array
    if 0 in size:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= flat.size:
        raise CheckpointError(
            f"storage record {storage.key!r} holds {flat.size} elements, but a tensor of size "
            f"{size} with stride {stride} at offset {offset} needs {last + 1}"
        )
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=tuple(s * item for s in stride))


def _rebuild_parameter(data, *_rest):
    return data


def _codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("_codecs.encode is allowed only on a string with encoding 'latin1'")
    return codecs.encode(text, encoding)


def _numpy_dtype(name, *_rest):
    dtype = np.dtype(name)
    if dtype.hasobject:
        raise UnsafeCheckpointError(f"numpy dtype {name!r} holds Python objects and would need pickle")
    return dtype


def _numpy_scalar(dtype, data=b""):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafeCheckpointError("numpy scalars are allowed only for numeric dtypes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): tuple,
        ("torch", "device"): str,
        ("_codecs", "encode"): _codecs_encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("__builtin__", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("numpy", "dtype"): _numpy_dtype,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    }
    for name, storage in STORAGE_TYPES.items():
        allowed[("torch", name)] = storage
        allowed[("torch.storage", name)] = storage
    for name, dtype in TORCH_DTYPES.items():
        allowed[("torch", name)] = np.dtype(dtype)
    return allowed


ALLOWED = _allowed()


def scan(data: bytes, what: str) -> None:
    """Refuse a pickle that is malformed or uses an opcode outside :data:`OPCODES`.

    Raises:
        UnsafeCheckpointError: a disallowed opcode.
        CheckpointError: a truncated or malformed pickle.
    """
    try:
        for op, _arg, pos in pickletools.genops(data):
            if op.name not in OPCODES:
                raise UnsafeCheckpointError(
                    f"{what}: the pickle uses opcode {op.name} at byte {pos}, which weights files do "
                    f"not need; refused (nothing from the file was run)"
                )
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - genops raises ValueError/struct.error on bad input
        raise CheckpointError(f"{what}: the pickle is truncated or malformed ({err})") from None


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED` globals and storage ids.

    Args:
        file: binary file object positioned at the pickle.
        load_storage (callable): ``load_storage(storage_type, key, numel, location) -> Storage``.
        what (str): the file, for messages.
    """

    def __init__(self, file: IO[bytes], load_storage: Callable[..., Storage], what: str):
        super().__init__(file, encoding="latin1")
        self._load_storage = load_storage
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED.get((module, name))
        if target is None:
            raise UnsafeCheckpointError(
                f"{self._what} names the global {module}.{name}, which is not on convscope's "
                f"allowlist of what weights files contain; refused (nothing from the file was run)"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise CheckpointError(f"{self._what} refers to an unknown persistent record {pid!r:.80}")
        storage_type, key, location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, StorageType):
            raise CheckpointError(
                f"{self._what}: storage {key!r} has dtype {storage_type!r}, which convscope does not "
                f"know (expected one of {', '.join(sorted(STORAGE_TYPES))})"
            )
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError(
                f"{self._what}: storage views of the oldest legacy format are not supported"
            )
        return self._load_storage(storage_type, key, int(numel), location)


def restricted_load(data: bytes, load_storage: Callable[..., Storage], what: str) -> Any:
    """Scan and unpickle ``data`` with :class:`RestrictedUnpickler`.

    Raises:
        UnsafeCheckpointError: a global or opcode outside the allowlist.
        CheckpointError: malformed data or storage records.
    """
    scan(data, what)
    try:
        return RestrictedUnpickler(io.BytesIO(data), load_storage, what).load()
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed pickle can fail in many ways
        raise CheckpointError(f"{what}: the pickle could not be read ({type(err).__name__}: {err})") from None
