"""Reading PyTorch files without PyTorch: the zip format (``torch.save`` since 1.6) and the legacy one.

Zip format: ``<archive>/data.pkl`` holds the pickled object tree, ``<archive>/data/<key>`` the
raw bytes of each storage and ``<archive>/byteorder`` their byte order. Legacy format
(``_use_new_zipfile_serialization=False``): a magic-number pickle, a protocol pickle, a
system-info pickle (byte order), the object pickle, a pickle of the storage keys, then per key
an int64 element count and the bytes. Both go through :mod:`.torch_unpickle`'s allowlist.

Storages become flat NumPy arrays in native byte order (bfloat16 widened to float32 exactly);
each tensor is a strided view into its storage, so views and tied weights share memory as in
PyTorch.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from typing import Any

import numpy as np

from .errors import CheckpointError
from .torch_unpickle import Storage, StorageType, restricted_load

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to the float32 values they stand for, exactly.

    Shape:
        bits: any shape -> same shape, float32.
    """
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def decode_storage(
    raw: bytes, storage_type: StorageType, numel: int, byteorder: str, what: str
) -> np.ndarray:
    """A storage's bytes as a flat native-order array of ``numel`` elements.

    Raises:
        CheckpointError: fewer bytes than ``numel`` elements need.
    """
    dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
    need = numel * dtype.itemsize
    if len(raw) < need:
        raise CheckpointError(
            f"{what}: the storage record holds {len(raw)} bytes, but {numel} {storage_type.name} "
            f"elements need {need} (truncated or corrupt file)"
        )
    array = np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("="))
    return bfloat16_to_float32(array) if storage_type.bfloat16 else array


def load_zip(path: str, archive: zipfile.ZipFile) -> Any:
    """Read a PyTorch zip checkpoint (already opened) with ndarray leaves.

    Raises:
        CheckpointError: no ``data.pkl``, missing or short storage records, a malformed pickle.
        UnsafeCheckpointError: the pickle names a global outside the allowlist.
    """
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise CheckpointError(f"{path} is a zip archive without data.pkl: not a PyTorch checkpoint")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{path}: unknown byte order {byteorder!r} (expected little or big)")
    cache: dict[str, Storage] = {}

    def load_storage(storage_type: StorageType, key: str, numel: int, _location) -> Storage:
        if key not in cache:
            member = f"{prefix}data/{key}"
            if member not in names:
                raise CheckpointError(f"{path}: storage record data/{key} is missing from the archive")
            with archive.open(member) as f:  # at most what the tensors need: no oversized reads
                raw = f.read(numel * storage_type.dtype.itemsize)
            cache[key] = Storage(
                decode_storage(raw, storage_type, numel, byteorder, f"{path} data/{key}"), key
            )
        return cache[key]

    return restricted_load(archive.read(pickles[0]), load_storage, path)


def load_legacy(path: str, data: bytes) -> Any:
    """Read a legacy (non-zip) PyTorch file with ndarray leaves.

    Raises:
        CheckpointError: truncated file or malformed records.
        UnsafeCheckpointError: a pickle names a global outside the allowlist.
    """
    header, start = [], 0
    for _ in range(3):  # magic number, protocol version, system info: plain data only
        end = _pickle_end(data, start, path)
        header.append(restricted_load(data[start:end], _no_storage(path), path))
        start = end
    _magic, _protocol, sys_info = header
    byteorder = "little"
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        byteorder = "big"
    pending: dict[str, tuple[StorageType, int]] = {}
    storages: dict[str, Storage] = {}

    def load_storage(storage_type: StorageType, key: str, numel: int, _location) -> Storage:
        if key not in storages:
            # a zero-stride stand-in of the right length (no memory) until the data is read
            dtype = np.float32 if storage_type.bfloat16 else storage_type.dtype
            stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=(numel,), strides=(0,))
            storages[key] = Storage(stand_in, key)
            pending[key] = (storage_type, numel)
        return storages[key]

    end = _pickle_end(data, start, path)
    result_bytes = data[start:end]
    # the storages' data follow this pickle: a first pass learns their types and sizes
    restricted_load(result_bytes, load_storage, path)
    keys_end = _pickle_end(data, end, path)
    keys = restricted_load(data[end:keys_end], _no_storage(path), path)
    offset = keys_end
    for key in keys:
        key = str(key)
        if key not in pending:
            raise CheckpointError(f"{path}: storage {key!r} is listed but never used")
        storage_type, numel = pending[key]
        if offset + 8 > len(data):
            raise CheckpointError(f"{path} is truncated: storage {key!r} is missing")
        (count,) = struct.unpack("<q" if byteorder == "little" else ">q", data[offset : offset + 8])
        nbytes = count * storage_type.dtype.itemsize
        raw = data[offset + 8 : offset + 8 + nbytes]
        if count != numel or len(raw) < nbytes:
            raise CheckpointError(
                f"{path} is truncated or corrupt: storage {key!r} should hold {numel} elements "
                f"({count} recorded, {len(raw)} bytes present)"
            )
        storages[key].array = decode_storage(raw, storage_type, numel, byteorder, f"{path} storage {key}")
        offset += 8 + nbytes
    missing = set(pending) - {str(k) for k in keys}
    if missing:
        raise CheckpointError(f"{path}: storages {sorted(missing)} have no data records")
    return restricted_load(result_bytes, lambda t, key, n, loc: storages[key], path)


def _no_storage(path: str):
    def refuse(*_args):
        raise CheckpointError(f"{path}: a storage record appears where plain data was expected")

    return refuse


def _pickle_end(data: bytes, start: int, path: str) -> int:
    """Where the pickle starting at ``start`` ends (the byte after its STOP)."""
    try:
        stream = io.BytesIO(data)
        stream.seek(start)
        for op, _arg, pos in pickletools.genops(stream):
            if op.name == "STOP" and pos is not None:
                return pos + 1
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path} is truncated or corrupt (a pickle could not be read: {err})") from None
    raise CheckpointError(f"{path} is truncated (a pickle has no end)")
