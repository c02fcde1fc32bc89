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
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

import numpy as np

try:  # optional: without it, chunks run serially and BLAS threads the GEMMs
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

#: Thresholds shared by the threaded kernels (a hand-off to the workers costs ~45 us here).
#: GEMM-bound kernels (conv chunks, dense products) use threads from this many flops on:
#: copy-bound small layers gain nothing (LeNet's conv1, 17 MFLOP, is 1.4x slower in threads;
#: its conv2, 43 MFLOP, and ResNet's stem 1.2-1.4x faster; a 5 MFLOP threshold made a
#: LeNet-5 step slower).
PARALLEL_MIN_FLOPS = 25e6
#: Memory-bound passes (elementwise ops, padding copies) use threads from this size on, in
#: chunks of PASS_CHUNK_BYTES (measured: below 1 MB the hand-off costs more than it saves).
PASS_PARALLEL_MIN_BYTES = 2**20
PASS_CHUNK_BYTES = 512 * 1024


class _RunState(TypedDict):
    threads: int | None  # chunk threads (None: not decided yet)
    pool: _Workers | None
    blas: Any  # threadpoolctl.ThreadpoolController (untyped package)
    limit: list[int] | None  # BLAS counts to restore when the outermost kernel ends
    depth: int  # nesting of _blas_single(True)
    user_blas: list[int] | None  # BLAS's own counts, before set_num_threads
    blas_libs: list[Any] | None  # threadpoolctl library controllers


_RUN: _RunState = {
    "threads": None,
    "pool": None,
    "blas": None,
    "limit": None,
    "depth": 0,
    "user_blas": None,
    "blas_libs": None,
}
_RUN_LOCK = threading.Lock()


def _reset_after_fork() -> None:  # a forked child has no worker threads: start afresh
    global _RUN_LOCK
    _RUN_LOCK = threading.Lock()  # the parent may have held it while forking
    if _RUN["depth"] and _RUN["limit"] is not None and _RUN["blas_libs"]:
        for lib, count in zip(_RUN["blas_libs"], _RUN["limit"], strict=True):  # undo the parent's hold
            lib.set_num_threads(count)
    _RUN.update({"pool": None, "limit": None, "depth": 0})


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def set_num_threads(n: int | None) -> None:
    """Threads convscope computes with, like ``torch.set_num_threads``.

    Sets the threads of the chunked kernels (convolutions, batch norm, elementwise ops,
    dense GEMMs) and of NumPy's BLAS, which the kernels hold to one thread while they run
    and which NumPy code outside them (e.g. batched matmul) uses. None: one thread per
    available core, at most 8, and BLAS's own count from before the first call.

    Without threadpoolctl (installed with the ``app`` extra) BLAS cannot be controlled,
    so the kernels run in the calling thread whatever ``n`` is and BLAS threads the GEMMs.

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
        user_blas = _RUN["user_blas"]
        if user_blas is None:  # BLAS's own counts, restored by set_num_threads(None)
            limit = _RUN["limit"]
            held = limit if _RUN["depth"] and limit is not None else [lib.get_num_threads() for lib in libs]
            user_blas = _RUN["user_blas"] = list(held)
        wanted = [default if n is None else int(n) for default in user_blas]
        if _RUN["depth"]:  # a kernel holds BLAS at one thread: it restores these counts
            _RUN["limit"] = wanted
        else:
            for lib, count in zip(libs, wanted, strict=True):
                lib.set_num_threads(count)
        if n is None:
            _RUN["user_blas"] = None


def get_num_threads() -> int:
    """Threads the chunked kernels run on (see :func:`set_num_threads`)."""
    return _threads()


def _threads() -> int:
    if ThreadpoolController is None:
        return 1  # BLAS cannot be held to one thread: chunks run in the caller's thread
    threads = _RUN["threads"]
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = _RUN["threads"] = max(1, min(cores or 1, 8))
    return threads


def _blas_libs() -> list[Any]:
    """threadpoolctl's controllers of NumPy's BLAS (looked up once).

    Other BLAS libraries in the process (e.g. PyTorch's) are left alone when NumPy's
    can be told apart by its path (wheels ship it in ``numpy.libs``).
    """
    if _RUN["blas"] is None:
        _RUN["blas"] = ThreadpoolController()
    blas_libs = _RUN["blas_libs"]
    if blas_libs is None:
        libs = _RUN["blas"].select(user_api="blas").lib_controllers
        home = os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))
        dirs = [os.path.join(home, "numpy"), os.path.join(home, "numpy.libs")]

        def inside(path: str, folder: str) -> bool:
            try:
                return os.path.commonpath([os.path.realpath(path), folder]) == folder
            except ValueError:  # different drives
                return False

        own = [lib for lib in libs if any(inside(lib.filepath, d) for d in dirs)]
        blas_libs = _RUN["blas_libs"] = own or libs
    return blas_libs


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
            limit = _RUN["limit"]
            if _RUN["depth"] == 0 and limit is not None:  # limit is set whenever depth > 0
                for lib, n in zip(_blas_libs(), limit, strict=True):
                    lib.set_num_threads(n)


class _Workers:
    """Persistent worker threads fed through one queue: a hand-off costs ~45 us here,
    against ~100 us for ``concurrent.futures`` (futures, waiters and a lock per task)."""

    def __init__(self) -> None:
        self.tasks: queue.SimpleQueue[tuple[Callable[[], None], queue.SimpleQueue[BaseException | None]]] = (
            queue.SimpleQueue()
        )
        self.count = 0

    def grow(self, count: int) -> None:
        """Start workers until there are ``count`` (call with _RUN_LOCK held)."""
        while self.count < count:
            threading.Thread(target=self._loop, name=f"convscope-{self.count}", daemon=True).start()
            self.count += 1

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
_R = TypeVar("_R")


def images_per_chunk(a: np.ndarray, chunk_bytes: int) -> int:
    """How many leading-axis slices (images) of ``a`` fit in ``chunk_bytes`` (at least one)."""
    return max(1, chunk_bytes // max(a[0].nbytes, 1))


def run_chunks(n: int, step: int, parallel: bool, body: Callable[[int, int], _R]) -> list[_R]:
    """Call ``body(n0, n1)`` over ``range(0, n, step)`` chunks, in threads if ``parallel``.

    Threads take the next chunk as they finish one (with several chunks per thread, a
    descheduled thread does not hold the others up) and each has its own
    :func:`workspace`. ``body`` must only write disjoint parts of shared arrays. On an
    exception or Ctrl-C, chunks not yet started are skipped and the call returns (raising)
    only once every worker has stopped.

    Returns:
        list of body's return values, in chunk order.
    """
    if n <= 0:
        return []
    # a chunk body that itself runs chunks (on a worker) stays on its thread
    threads = min(_threads(), n) if parallel and not getattr(_IN_WORKER, "flag", False) else 1
    step = max(1, min(step, -(-n // threads)))  # at least one chunk per thread
    chunks = [(n0, min(n, n0 + step)) for n0 in range(0, n, step)]
    held = False
    if threads < 2:
        try:
            _blas_single(True)
            held = True
            return [body(*c) for c in chunks]
        finally:
            if held:
                _blas_single(False)
    with _RUN_LOCK:
        pool = _RUN["pool"]
        if pool is None:
            pool = _RUN["pool"] = _Workers()
        pool.grow(threads - 1)
    results: dict[int, _R] = {}  # chunk index -> body's value (each written by one thread)
    counter = itertools.count()  # next() is atomic under the GIL: dynamic load balance
    stop: list[bool] = []  # set on an error or Ctrl-C: chunks not yet started are skipped

    def share() -> None:
        for i in iter(counter.__next__, len(chunks)):
            if i >= len(chunks) or stop:
                return
            results[i] = body(*chunks[i])

    done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
    errors: list[BaseException] = []
    submitted = 0
    failure: BaseException | None = None
    try:
        _blas_single(True)
        held = True
        for _ in range(threads - 1):
            pool.tasks.put((share, done))
            submitted += 1
        share()
    except BaseException as exc:  # an error in this thread's chunk, or Ctrl-C
        stop.append(True)
        failure = exc
    # wait for every worker, even through another Ctrl-C: they write shared arrays and this
    # thread's scratch buffers, which the next kernel call would reuse
    while submitted:
        try:
            err = done.get()
        except BaseException as exc:
            stop.append(True)
            failure = failure or exc
            continue
        submitted -= 1
        if err is not None:
            stop.append(True)
            errors.append(err)
    if held:
        _blas_single(False)
    if failure is not None:
        raise failure
    if errors:
        raise errors[0]  # a worker's exception
    return [results[i] for i in range(len(chunks))]
