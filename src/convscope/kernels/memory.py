"""Keep freed activation memory in the process instead of returning it to the OS (glibc only).

glibc serves large blocks (over 128 KB, its default threshold) with fresh ``mmap`` pages
and returns them on ``free``, so every new activation or gradient array of a training step
starts with page faults: here a max-pool backward took 2.6 ms inside a training step
against 0.26 ms in a loop that reuses its memory. Raising glibc's mmap and trim thresholds
makes freed blocks reusable, as PyTorch's caching allocators do for their devices. The
price: the process keeps its peak heap size.

It is a process-wide setting, so ``import convscope`` does not make it: call
:func:`keep_freed_memory` (``convscope.keep_freed_memory()``) to switch it on. The ``convscope``
command and the benchmarks do; ``CONVSCOPE_SYSTEM_MALLOC=1`` makes the call do nothing (malloc
left alone). Nothing happens on other C libraries or platforms.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LIMIT = 1 << 30  # blocks up to 1 GiB come from the reusable heap

configured = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds once (process-wide, cannot be undone).

    Returns:
        bool: whether the setting is on (False under ``CONVSCOPE_SYSTEM_MALLOC=1``, on other
        platforms, or when glibc's ``mallopt`` is missing).
    """
    global configured
    if configured or os.environ.get("CONVSCOPE_SYSTEM_MALLOC") or not sys.platform.startswith("linux"):
        return configured
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    configured = bool(mallopt(_M_MMAP_THRESHOLD, _LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    return configured


def is_enabled() -> bool:
    """Whether :func:`keep_freed_memory` switched the setting on in this process."""
    return configured
