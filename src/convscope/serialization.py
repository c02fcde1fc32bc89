"""save/load: one .npz file of named arrays, no pickle anywhere, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict

import numpy as np

from .autograd.tensor import Tensor


def _read_umask() -> int:
    # os.umask can only be read by setting it: done once, at import, not per write (it is
    # process-wide, and another thread creating a file in between would get the wrong mode)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


class CheckpointError(ValueError):
    """A file is not a readable convscope/.npz weights file (corrupt, foreign or truncated)."""


def atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then rename it into place.

    A failure (or Ctrl-C) leaves any existing file at ``path`` untouched. The file gets the
    mode the umask gives a new file (0644 under the usual 022).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; a saved file gets the umask's mode, as open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(state_dict, path) -> None:
    """Write a mapping of name -> Tensor/array to one ``.npz`` file, atomically.

    Args:
        state_dict (mapping): e.g. ``model.state_dict()``; values Tensors or NumPy arrays.
        path (str or Path): destination (``.npz`` is not appended automatically).

    Raises:
        TypeError: a value is not numeric (nothing would need pickle to store it).
    """
    arrays = OrderedDict()
    for key, value in state_dict.items():
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"save: value for {key!r} has dtype {array.dtype}; only numeric arrays "
                f"can be saved without pickle"
            )
        arrays[str(key)] = array
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path) -> OrderedDict[str, Tensor]:
    """Read a file written by :func:`save` (or any .npz of numeric arrays) as name -> Tensor.

    Never unpickles: object arrays are refused.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is corrupt, truncated or not an .npz of numeric arrays.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    archive = open_npz(path, "a readable convscope weights file")
    try:
        with archive:
            return OrderedDict(
                (key, Tensor._wrap(archive[key], False)) for key in archive.files
            )  # fresh arrays
    except Exception:  # noqa: BLE001 - e.g. a truncated member or an object array
        raise CheckpointError(
            f"{path} is corrupt: its arrays could not be read (truncated file, or "
            f"object arrays that would need pickle)"
        ) from None


def open_npz(path: str, what: str):
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
