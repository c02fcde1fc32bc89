"""Run a kernel over chunks of the batch on all cores.

Chunks are small (L2-sized) and NumPy copies and elementwise ufuncs run on one
core, so the cores are used by running whole chunks (copy + GEMM + write-back,
or a fused elementwise pass) in threads; NumPy and BLAS release the GIL. BLAS
is held to one thread meanwhile (also in serial runs, see _blas_single). That
needs threadpoolctl; without it chunks run in the caller's thread and BLAS
threads the GEMMs as usual.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading

import numpy as np

try:  # optional: without it, chunks run serially and BLAS threads the GEMMs
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

_RUN = {"threads": None, "pool": None, "blas": None, "limit": None, "depth": 0, "user_blas": None,
        "blas_libs": None}
_RUN_LOCK = threading.Lock()


def _reset_after_fork() -> None:  # a forked child has no worker threads: start afresh
    _RUN.update(pool=None, blas=None, limit=None, depth=0, user_blas=None, blas_libs=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def set_num_threads(n: int | None) -> None:
    """Threads convscope computes with, like ``torch.set_num_threads``.

    Sets the threads of the chunked kernels and of NumPy's BLAS (for the GEMMs outside
    chunked kernels, e.g. Linear layers). None: one per available core (up to 8 for the
    kernels) and BLAS's own count from before the first call.

    Raises:
        ValueError: n is not None and not a positive integer.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"set_num_threads expects a positive integer or None, got {n!r}")
    with _RUN_LOCK:
        _RUN["threads"] = None if n is None else int(n)
        if ThreadpoolController is None:
            return
        libs = _blas_libs()
        if _RUN["user_blas"] is None:  # BLAS's own counts, restored by set_num_threads(None)
            _RUN["user_blas"] = [lib.get_num_threads() for lib in libs]
        for lib, default in zip(libs, _RUN["user_blas"]):
            lib.set_num_threads(default if n is None else int(n))
        if n is None:
            _RUN["user_blas"] = None


def get_num_threads() -> int:
    """Threads the chunked kernels run on (see :func:`set_num_threads`)."""
    return _threads()


def _threads() -> int:
    if _RUN["threads"] is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        _RUN["threads"] = max(1, min(cores or 1, 8)) if ThreadpoolController else 1
    return _RUN["threads"]


def _blas_libs() -> list:
    """threadpoolctl's controllers of NumPy's BLAS (looked up once).

    Other BLAS libraries in the process (e.g. PyTorch's) are left alone when NumPy's
    can be told apart by its path (wheels ship it in ``numpy.libs``).
    """
    if _RUN["blas"] is None:
        _RUN["blas"] = ThreadpoolController()
    if _RUN["blas_libs"] is None:
        libs = _RUN["blas"].select(user_api="blas").lib_controllers
        home = os.path.dirname(os.path.dirname(np.__file__))
        own = [lib for lib in libs if os.path.abspath(lib.filepath).startswith(
            (os.path.join(home, "numpy"), os.path.join(home, "numpy.libs")))]
        _RUN["blas_libs"] = own or libs
    return _RUN["blas_libs"]


def _blas_single(enter: bool) -> None:
    """Hold BLAS to one thread while any run_chunks call is active (reference counted).

    Chunk GEMMs are small: a second BLAS thread gains little on an idle machine,
    and when another process holds the other core every GEMM waits for the
    descheduled helper (measured: LeNet's conv2 dx 3.4 ms -> 196 ms). The library
    controllers are called directly (about 2 us, against 20 us for a
    ``threadpoolctl`` limit context per call).
    """
    if ThreadpoolController is None:
        return
    with _RUN_LOCK:
        if enter:
            if _RUN["depth"] == 0:
                libs = _blas_libs()
                _RUN["limit"] = [lib.get_num_threads() for lib in libs]
                for lib in libs:
                    lib.set_num_threads(1)
            _RUN["depth"] += 1
        else:
            _RUN["depth"] -= 1
            if _RUN["depth"] == 0:
                for lib, n in zip(_blas_libs(), _RUN["limit"]):
                    lib.set_num_threads(n)


class _Workers:
    """Persistent worker threads fed through one queue: a hand-off costs ~20 us here,
    against ~100 us for ``concurrent.futures`` (futures, waiters and a lock per task)."""

    def __init__(self, count: int):
        self.tasks = queue.SimpleQueue()
        self.count = count
        for i in range(count):
            threading.Thread(target=self._loop, name=f"convscope-{i}", daemon=True).start()

    def _loop(self) -> None:
        _IN_WORKER.flag = True
        while True:
            fn, done = self.tasks.get()
            try:
                fn()
                done.put(None)
            except BaseException as exc:  # handed to the caller, which re-raises it
                done.put(exc)


_IN_WORKER = threading.local()


def images_per_chunk(a, chunk_bytes: int) -> int:
    """How many leading-axis slices (images) of ``a`` fit in ``chunk_bytes`` (at least one)."""
    return max(1, chunk_bytes // max(a[0].nbytes, 1))


def run_chunks(n: int, step: int, parallel: bool, body) -> list:
    """Call ``body(n0, n1)`` over ``range(0, n, step)`` chunks, in threads if ``parallel``.

    Threads take the next chunk as they finish one (a descheduled thread does
    not hold the others up) and each has its own :func:`workspace`.
    ``body`` must only write disjoint parts of shared arrays.

    Returns:
        list of body's return values, in chunk order.
    """
    # a chunk body that itself runs chunks (on a worker) stays on its thread
    threads = min(_threads(), n) if parallel and not getattr(_IN_WORKER, "flag", False) else 1
    step = max(1, min(step, -(-n // threads)))  # at least one chunk per thread
    chunks = [(n0, min(n, n0 + step)) for n0 in range(0, n, step)]
    if threads < 2:
        _blas_single(True)
        try:
            return [body(*c) for c in chunks]
        finally:
            _blas_single(False)
    with _RUN_LOCK:
        pool = _RUN["pool"]
        if pool is None or pool.count < threads - 1:
            pool = _RUN["pool"] = _Workers(threads - 1)
    results = [None] * len(chunks)
    counter = itertools.count()  # next() is atomic under the GIL: dynamic load balance

    def share():
        for i in iter(counter.__next__, len(chunks)):
            if i >= len(chunks):
                return
            results[i] = body(*chunks[i])

    done = queue.SimpleQueue()
    errors = []
    _blas_single(True)
    try:
        for _ in range(threads - 1):
            pool.tasks.put((share, done))
        try:
            share()
        finally:
            for _ in range(threads - 1):  # never leave workers running on shared buffers
                err = done.get()
                if err is not None:
                    errors.append(err)
    finally:
        _blas_single(False)
    if errors:
        raise errors[0]  # a worker's exception
    return results
