"""Native max/avg pooling against the NumPy kernels: bit-identical values, indices and
gradients on random geometries (windows, strides, padding, dilation, ceil mode, batch 1 and
odd batches, non-contiguous inputs), with ties, NaNs and all -inf windows."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.kernels import pool as numpy_pool
from convscope.kernels.geometry import ConvGeometry
from convscope.kernels.native import pool as K
from convscope.kernels.native._unsupported import Unsupported

pytestmark = pytest.mark.native

CASES = 60


def _geometry(rng):
    """A random valid pooling configuration (PyTorch's limits: padding <= half the window)."""
    while True:
        kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
        stride = tuple(int(s) for s in rng.integers(1, 4, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
        pads = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        ceil_mode = bool(rng.integers(0, 2))
        batch, channels = int(rng.choice([1, 2, 3, 5])), int(rng.integers(1, 5))
        shape = (batch, channels, *(int(v) for v in rng.integers(4, 14, 2)))
        padding = ((pads[0], pads[0]), (pads[1], pads[1]))
        try:
            ConvGeometry.conv(shape[2:], kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        except ValueError:
            continue  # window larger than the padded input
        return shape, kernel, stride, padding, dilation, ceil_mode


def _input(rng, shape):
    # few distinct values: many ties; some -inf (whole -inf windows) and NaNs
    x = rng.integers(-3, 3, shape).astype(np.float32)
    x[rng.random(shape) < 0.25] = -np.inf
    x[rng.random(shape) < 0.03] = np.nan
    if rng.integers(0, 2):  # a non-contiguous view with the same values
        x = np.asfortranarray(x)
    return x


@pytest.mark.parametrize("seed", range(CASES))
def test_max_pool_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    shape, kernel, stride, padding, dilation, ceil_mode = _geometry(rng)
    x = _input(rng, shape)
    out, idx = K.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    ref, ref_idx = numpy_pool.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    assert idx.dtype == np.int64 and out.dtype == np.float32
    no_idx, none = K.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode, False)
    assert none is None
    np.testing.assert_array_equal(no_idx, ref)
    g = rng.standard_normal(out.shape).astype(np.float32)
    gx = K.max_pool2d_backward(g, idx, shape)
    np.testing.assert_array_equal(gx, numpy_pool.max_pool2d_backward(g, ref_idx, shape))


@pytest.mark.parametrize("seed", range(CASES))
def test_avg_pool_matches_numpy(seed):
    rng = np.random.default_rng(1000 + seed)
    shape, kernel, stride, padding, _, ceil_mode = _geometry(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    if seed % 2:
        x = x[:, :, ::-1]  # negative strides
    include_pad = bool(rng.integers(0, 2))
    override = int(rng.integers(1, 7)) if seed % 5 == 0 else None
    args = (kernel, stride, padding, ceil_mode, include_pad, override)
    out = K.avg_pool2d_forward(x, *args)
    np.testing.assert_array_equal(out, numpy_pool.avg_pool2d_forward(x, *args))
    g = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(
        K.avg_pool2d_backward(g, shape, *args), numpy_pool.avg_pool2d_backward(g, shape, *args)
    )


@pytest.mark.parametrize("size", [(64, 6, 28, 28), (2, 3, 7, 9)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_2x2_fast_path_and_threads_match_numpy(size, ceil_mode):
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 2, size).astype(np.float32)  # ties everywhere
    args = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), ceil_mode)
    out, idx = K.max_pool2d_forward(x, *args)
    ref, ref_idx = numpy_pool.max_pool2d_forward(x, *args)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    g = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(
        K.max_pool2d_backward(g, idx, size), numpy_pool.max_pool2d_backward(g, ref_idx, size)
    )


@pytest.mark.parametrize("size", [(3, 2, 6, 66), (2, 3, 9, 35), (5, 4, 4, 32), (1, 1, 2, 2), (7, 3, 5, 10)])
@pytest.mark.parametrize("threads", [1, 2])
def test_2x2_vector_rows_match_numpy(size, threads):
    """Rows shorter and longer than a vector, odd sizes, the last rows of each thread's chunk:
    values and indices equal NumPy's (a tie of -0.0 and +0.0 routes to the first, as NumPy's
    indices do)."""
    from convscope.kernels.parallel import get_num_threads, set_num_threads

    rng = np.random.default_rng(size[3])
    x = _input(rng, size)
    x[rng.random(size) < 0.2] = -0.0  # ties between -0.0 and +0.0
    args = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), False)
    previous = get_num_threads()
    set_num_threads(threads)
    try:
        out, idx = K.max_pool2d_forward(x, *args)
        no_idx, _ = K.max_pool2d_forward(x, *args, False)
    finally:
        set_num_threads(previous)
    ref, ref_idx = numpy_pool.max_pool2d_forward(x, *args)
    for got in (out, no_idx):
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(idx, ref_idx)


def test_uncovered_configurations_are_unsupported():
    x64 = np.zeros((1, 1, 4, 4))
    with pytest.raises(Unsupported):
        K.max_pool2d_forward(x64, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), False)
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(Unsupported):
        K.avg_pool2d_forward(x, (2, 2), (2, 2), ((1, 0), (0, 0)), False, True)
