"""Atomic file writes: a temp file next to the destination, then one rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, Union

#: A file path: a string or an ``os.PathLike`` (``pathlib.Path``).
StrPath = Union[str, "os.PathLike[str]"]


def _read_umask() -> int:
    # os.umask can only be read by setting it: done once, at import, not per write (it is
    # process-wide, and another thread creating a file in between would get the wrong mode)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write(path: StrPath, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then rename it into place.

    A failure (or Ctrl-C) leaves any existing file at ``path`` untouched. The new file takes
    the mode the umask gives (mkstemp's private 0600 is widened accordingly).

    Args:
        path (str or Path): destination.
        write (callable): receives a binary file object open for writing.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
