"""kernels.gemm.matmul: equal to NumPy's product whether it runs in one call or split over
threads, for every shape class the dense layers produce."""
from __future__ import annotations

import numpy as np
import pytest

from convscope.kernels import gemm, parallel
from parity import assert_close

SHAPES = [(1, 5, 3), (7, 1, 4), (64, 400, 120), (300, 250, 200), (5, 0, 3), (0, 4, 2)]


@pytest.fixture(params=[1, 2, 3])
def threads(request):
    parallel.set_num_threads(request.param)
    yield request.param
    parallel.set_num_threads(None)


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_matches_numpy(m, k, n, dtype, transposed, threads, monkeypatch):
    monkeypatch.setattr(gemm, "PARALLEL_MIN_FLOPS", 0)  # split even the small ones
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.standard_normal((k, m) if transposed else (m, k)).astype(dtype)
    a = a.T if transposed else a  # a non-contiguous view, like the weight-gradient's g.T
    b = rng.standard_normal((k, n)).astype(dtype)
    got = gemm.matmul(a, b)
    assert got.shape == (m, n) and got.dtype == dtype
    # a different row split can change BLAS's blocking and so the summation order: the
    # bound is relative to the sum of |terms| (|a| @ |b|), as for every sum of products
    assert_close(got, a @ b, dtype, "a @ b", magnitude=np.abs(a) @ np.abs(b))


def test_refuses_non_matrices():
    with pytest.raises(ValueError, match="2-D arrays"):
        gemm.matmul(np.ones(3), np.ones((3, 2)))
