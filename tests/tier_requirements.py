"""What each test tier needs, checked once per session: (met, reason when not met)."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil


def _module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@functools.cache
def browser() -> tuple[bool, str]:
    if not _module("playwright"):
        return False, "the browser tier needs Playwright for Python (pip install playwright)"
    if not os.path.exists("/usr/bin/chromium"):
        return False, "the browser tier needs /usr/bin/chromium (apt-get install -y chromium)"
    return True, ""


@functools.cache
def mpi() -> tuple[bool, str]:
    if not _module("mpi4py"):
        return False, "the mpi tier needs mpi4py (pip install -e '.[mpi]')"
    if shutil.which("mpiexec") is None:
        return False, "the mpi tier needs mpiexec on PATH (the mpich wheel provides one)"
    return True, ""


@functools.cache
def native() -> tuple[bool, str]:
    try:
        from convscope import backends
    except ImportError:
        return False, "convscope has no backends module yet"
    if "native" not in backends.available():
        return False, f"the native backend is not built: {backends.info()['native']['reason']}"
    return True, ""


@functools.cache
def slow() -> tuple[bool, str]:
    return True, ""


TIERS = {"browser": browser, "mpi": mpi, "native": native, "slow": slow}
