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
@pytest.mark.parametrize("transposed", ["", "a", "b"])
def test_matches_numpy(m, k, n, dtype, transposed, threads, monkeypatch):
    monkeypatch.setattr(gemm, "PARALLEL_MIN_FLOPS", 0)  # split even the small ones
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    # transposed views, like the weight-gradient's g.T ("a") and Linear's weight.T ("b")
    a = (
        rng.standard_normal((k, m)).astype(dtype).T
        if transposed == "a"
        else rng.standard_normal((m, k)).astype(dtype)
    )
    b = (
        rng.standard_normal((n, k)).astype(dtype).T
        if transposed == "b"
        else rng.standard_normal((k, n)).astype(dtype)
    )
    got = gemm.matmul(a, b)
    assert got.shape == (m, n) and got.dtype == dtype
    # a different row split can change BLAS's blocking and so the summation order: the
    # bound is relative to the sum of |terms| (|a| @ |b|), as for every sum of products
    assert_close(got, a @ b, dtype, "a @ b", magnitude=np.abs(a) @ np.abs(b))


def test_refuses_non_matrices():
    with pytest.raises(ValueError, match="2-D arrays"):
        gemm.matmul(np.ones(3), np.ones((3, 2)))


def test_mixed_dtypes_follow_numpy():
    a = np.ones((3, 4), dtype=np.float32)
    b = np.ones((4, 5), dtype=np.float64)
    got = gemm.matmul(a, b)
    assert got.dtype == np.result_type(a, b) and np.all(got == 4)
