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
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

try:  # optional: without it, chunks run serially and BLAS threads the GEMMs
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

_RUN = {"threads": None, "pool": None, "blas": None, "limit": None, "depth": 0, "user_blas": None}
_RUN_LOCK = threading.Lock()


def _reset_after_fork() -> None:  # a forked child has no worker threads: start afresh
    _RUN.update(pool=None, blas=None, limit=None, depth=0, user_blas=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def set_num_threads(n: int | None) -> None:
    """Threads convscope computes with, like ``torch.set_num_threads``.

    Sets the threads of the chunked kernels and BLAS's own thread pool (for the GEMMs
    outside chunked kernels, e.g. Linear layers). None: one per available core (up to
    8 for the kernels) and BLAS's default.

    Raises:
        ValueError: n is not None and not a positive integer.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"set_num_threads expects a positive integer or None, got {n!r}")
    with _RUN_LOCK:
        _RUN["threads"] = None if n is None else int(n)
        if ThreadpoolController is None:
            return
        if _RUN["blas"] is None:
            _RUN["blas"] = ThreadpoolController()
        if _RUN["user_blas"] is not None:  # undo an earlier call first
            _RUN["user_blas"].restore_original_limits()
            _RUN["user_blas"] = None
        if n is not None:
            _RUN["user_blas"] = _RUN["blas"].limit(limits=int(n), user_api="blas")


def get_num_threads() -> int:
    """Threads the chunked kernels run on (see :func:`set_num_threads`)."""
    return _threads()


def _threads() -> int:
    if _RUN["threads"] is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        _RUN["threads"] = max(1, min(cores or 1, 8)) if ThreadpoolController else 1
    return _RUN["threads"]


def _blas_single(enter: bool) -> None:
    """Hold BLAS to one thread while any run_chunks call is active (reference counted).

    Chunk GEMMs are small: a second BLAS thread gains little on an idle machine,
    and when another process holds the other core every GEMM waits for the
    descheduled helper (measured: LeNet's conv2 dx 3.4 ms -> 196 ms).
    """
    if ThreadpoolController is None:
        return
    with _RUN_LOCK:
        if enter:
            if _RUN["depth"] == 0:
                if _RUN["blas"] is None:
                    _RUN["blas"] = ThreadpoolController()
                _RUN["limit"] = _RUN["blas"].limit(limits=1, user_api="blas")
            _RUN["depth"] += 1
        else:
            _RUN["depth"] -= 1
            if _RUN["depth"] == 0:
                _RUN["limit"].restore_original_limits()


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
    threads = min(_threads(), n) if parallel else 1
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
        if pool is None or pool._max_workers < threads - 1:
            pool = _RUN["pool"] = ThreadPoolExecutor(threads - 1, thread_name_prefix="convscope")
    results = [None] * len(chunks)
    counter = itertools.count()  # next() is atomic under the GIL: dynamic load balance

    def share(_):
        for i in iter(counter.__next__, len(chunks)):
            if i >= len(chunks):
                return
            results[i] = body(*chunks[i])

    _blas_single(True)
    try:
        futures = [pool.submit(share, t) for t in range(1, threads)]
        try:
            share(0)
        finally:
            wait(futures)  # never leave workers running on shared buffers
    finally:
        _blas_single(False)
    for f in futures:
        f.result()  # re-raise a worker's exception
    return results
