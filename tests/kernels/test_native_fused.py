"""Native fused passes (eval batch norm + ReLU, residual add + ReLU) against the unfused
native passes followed by NumPy's ReLU: bit-identical, including NaN, -0.0 and vector tails,
threaded and not; uncovered inputs are left to NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.kernels import elementwise as numpy_ew
from convscope.kernels.native import batchnorm as K
from convscope.kernels.native import elementwise as KE
from convscope.kernels.native._unsupported import Unsupported
from convscope.kernels.parallel import get_num_threads, set_num_threads

pytestmark = pytest.mark.native


def _special(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 5)] = np.nan
    flat[rng.integers(0, flat.size, 5)] = -0.0
    return x


@pytest.mark.parametrize("shape", [(7, 5, 9, 11), (64, 16, 32, 32), (1, 3, 1, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_affine_relu_equals_affine_then_relu(shape, threads):
    rng = np.random.default_rng(shape[1])
    x = _special(rng, shape)
    c = shape[1]
    scale, shift = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    previous = get_num_threads()
    set_num_threads(threads)
    try:
        fused = K.channel_affine_relu(x, scale, shift)
        expected = np.maximum(K.channel_affine(x, scale, shift), 0)
    finally:
        set_num_threads(previous)
    np.testing.assert_array_equal(fused, expected)
    numbers = ~np.isnan(expected)  # a NaN's sign bit is not a result
    np.testing.assert_array_equal(np.signbit(fused[numbers]), np.signbit(expected[numbers]))
    assert fused.dtype == np.float32 and (fused[~np.isnan(fused)] >= 0).all()


@pytest.mark.parametrize("shape", [(9, 4, 5, 7), (64, 32, 16, 16), (3, 10)])
@pytest.mark.parametrize("threads", [1, 2])
def test_add_relu_equals_add_then_relu(shape, threads):
    rng = np.random.default_rng(len(shape))
    a, b = _special(rng, shape), _special(rng, shape)
    b_view = np.asfortranarray(b)  # a non-contiguous operand
    previous = get_num_threads()
    set_num_threads(threads)
    try:
        fused = KE.add_relu(a, b_view)
    finally:
        set_num_threads(previous)
    expected = numpy_ew.add_relu(a, b)
    np.testing.assert_array_equal(fused, expected)
    numbers = ~np.isnan(expected)  # a NaN's sign bit is not a result
    np.testing.assert_array_equal(np.signbit(fused[numbers]), np.signbit(expected[numbers]))
    np.testing.assert_array_equal(expected, np.maximum(a + b, 0))


def test_uncovered_inputs_are_unsupported():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(Unsupported):
        KE.add_relu(a, np.zeros((1, 3), np.float32))
    with pytest.raises(Unsupported):
        KE.add_relu(a.astype(np.float64), a.astype(np.float64))
    with pytest.raises(Unsupported):
        K.channel_affine_relu(a.astype(np.float64), np.ones(3), np.zeros(3))
