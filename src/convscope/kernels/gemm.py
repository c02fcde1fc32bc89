"""Matrix products on convscope's own threads, with BLAS held to one thread.

NumPy's BLAS (OpenBLAS) keeps its worker threads busy-waiting for a while after each
multi-threaded call. Between two of convscope's threaded kernels that spinning worker
takes the core a chunk thread needs (measured: LeNet-5 step 9.7 -> 8.1 ms median, and
half the CPU time, with BLAS single-threaded outside the conv kernels too). So the dense
layers' GEMMs run like the conv kernels: rows split over :func:`run_chunks` threads when
the product is big enough to gain from it, BLAS on one thread inside each.
"""

from __future__ import annotations

import numpy as np

from .parallel import PARALLEL_MIN_FLOPS, run_chunks  # fewer flops: the calling thread


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D arrays, split over the kernel threads along the longer side of the result.

    Splitting rows makes every thread read all of ``b``, splitting columns all of ``a``: the
    split goes along the larger of M and N so each thread streams only its share of the
    big operand (a 64 x 9216 by 9216 x 4096 layer: 46 ms split by rows, 30 ms by columns).

    Shape:
        a: (M, K), b: (K, N) -> (M, N), dtype ``np.result_type(a, b)``.
    """
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul expects 2-D arrays, got shapes {a.shape} and {b.shape}")
    (m, k), n = a.shape, b.shape[1]
    out = np.empty((m, n), dtype=np.result_type(a, b))
    parallel = 2.0 * m * k * n >= PARALLEL_MIN_FLOPS and max(m, n) >= 2
    if n > m:
        run_chunks(n, n, parallel, lambda c0, c1: np.matmul(a, b[:, c0:c1], out=out[:, c0:c1]))
    else:
        run_chunks(m, m, parallel, lambda r0, r1: np.matmul(a[r0:r1], b, out=out[r0:r1]))
    return out
