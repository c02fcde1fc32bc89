"""Native ReLU forward and backward against the NumPy kernels: bit-identical (NaN, -0.0, inf,
vector tails), threaded and not; uncovered inputs are left to NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.kernels.native import elementwise as KE
from convscope.kernels.native._unsupported import Unsupported
from convscope.kernels.parallel import get_num_threads, set_num_threads

pytestmark = pytest.mark.native


def _special(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    for value in (np.nan, -np.nan, -0.0, 0.0, np.inf, -np.inf):
        flat[rng.integers(0, flat.size, 3)] = value
    return x


def _same_bits(a, b):
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("shape", [(64, 6, 28, 28), (5, 3, 7, 9), (37,), (1, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_forward_and_backward_equal_numpy_bit_for_bit(shape, threads):
    rng = np.random.default_rng(sum(shape))
    x, g = _special(rng, shape), _special(rng, shape)
    previous = get_num_threads()
    set_num_threads(threads)
    try:
        out = KE.relu_forward(x)
        gx = KE.relu_backward(g, out)
    finally:
        set_num_threads(previous)
    _same_bits(out, np.maximum(x, 0))
    with np.errstate(invalid="ignore"):  # inf * 0 in NumPy's g * mask
        expected = g * (np.maximum(x, 0) > 0)  # what numpy_ew.relu_backward computes
    _same_bits(gx, expected)


def test_uncovered_inputs_are_unsupported():
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(Unsupported):
        KE.relu_forward(x.astype(np.float64))
    with pytest.raises(Unsupported):
        KE.relu_forward(x[:, ::2])  # not contiguous
    with pytest.raises(Unsupported):
        KE.relu_backward(x, x[:, :3].copy())
    with pytest.raises(Unsupported):
        KE.relu_backward(x.astype(np.float64), x)
