"""save/load: kept as the old import path; everything lives in :mod:`convscope.formats`."""

from __future__ import annotations

from .formats import CheckpointError, UnsafeCheckpointError, atomic_write, load, load_model, save
from .formats.npz_format import open_npz

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "atomic_write",
    "load",
    "load_model",
    "open_npz",
    "save",
]
