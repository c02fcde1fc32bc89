"""One call into C per memory-bound pass (batch norm, ReLU, add + ReLU, pooling), its chunks on
the native thread pool (``passes_parallel.c``, ``threads.c``).

A pass is described by a :class:`PassJob` (the C struct ``pass_job``): its kind, how many units
(images, planes or floats) and how many per chunk, and the arrays' addresses. :func:`run_pass`
plans the chunks and runs them; the serial kernels it calls are those of ``batchnorm.c``,
``elementwise.c`` and ``pool.c``.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..parallel import get_num_threads

#: The pass numbers of passes_parallel.c's enum, in order.
PASS_KINDS = {
    name: i
    for i, name in enumerate(
        (
            "bn_stats",
            "bn_apply",
            "bn_apply_relu",
            "bn_backward_sums",
            "bn_backward_input",
            "channel_sums",
            "add_relu",
            "relu_forward",
            "relu_backward",
            "max_pool_forward",
            "max_pool_backward",
            "avg_pool_forward",
            "avg_pool_backward",
        )
    )
}

#: Passes over fewer bytes than this run on the calling thread alone: memory-bound passes over
#: maps that sit in the last-level cache gain little from a second core, less than a hand-off.
PARALLEL_MIN_BYTES = 512 * 1024
#: Chunks per thread (a descheduled thread then holds the others up less).
CHUNKS_PER_THREAD = 2

_P = ctypes.c_void_p


class PassJob(ctypes.Structure):
    """ctypes mirror of passes_parallel.c's ``pass_job`` (addresses as plain integers)."""

    _fields_ = [
        ("kind", ctypes.c_long),
        ("count", ctypes.c_long),
        ("step", ctypes.c_long),
        ("c", ctypes.c_long),
        ("l", ctypes.c_long),
        ("l_out", ctypes.c_long),
        ("a", _P),
        ("b", _P),
        ("y", _P),
        ("out", _P),
        ("idx", _P),
        ("m", _P),
        ("s", _P),
        ("k", _P),
        ("t", _P),
        ("p1", _P),
        ("p2", _P),
        ("p3", _P),
        ("g", _P),
        ("hout", ctypes.c_long),
        ("wout", ctypes.c_long),
    ]


def plan(count: int, nbytes: int, align: int = 1) -> tuple[int, int]:
    """(units per chunk, threads) for a pass over ``count`` units and ``nbytes`` bytes; with
    several threads, chunks are a multiple of ``align`` units (64 floats: whole cache lines)."""
    threads = get_num_threads()
    if nbytes < PARALLEL_MIN_BYTES or threads < 2 or count < 2:
        return max(count, 1), 1
    step = -(-count // (threads * CHUNKS_PER_THREAD))
    return -(-step // align) * align, threads


def chunks(count: int, step: int) -> int:
    return -(-count // step) if count > 0 else 0


def partial_sums(count: int, step: int, channels: int) -> np.ndarray:
    """Zeroed float64 (chunks, C) parts for a summing pass."""
    return np.zeros((max(chunks(count, step), 1), channels))


def run_pass(lib, kind: str, count: int, step: int, threads: int, **arrays) -> None:
    """Run pass ``kind`` over ``count`` units, ``step`` per chunk, on ``threads`` threads.

    ``arrays``: the PassJob fields (arrays as addresses, ints as ints).

    Raises:
        MemoryError: a chunk could not allocate its scratch memory.
    """
    job = PassJob(kind=PASS_KINDS[kind], count=count, step=step, **arrays)
    err = lib.cs_pass_parallel(ctypes.byref(job), threads)
    if err == -1:
        raise MemoryError(f"native {kind}: out of memory")
    if err:
        raise RuntimeError(f"native {kind}: pass failed ({err})")
