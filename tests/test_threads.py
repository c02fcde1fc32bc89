"""convscope.set_num_threads / get_num_threads: the thread count reaches the kernels and BLAS,
results do not depend on it, and bad values are refused."""
import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope.kernels import parallel

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture
def restore_threads():
    yield
    cs.set_num_threads(None)


def _blas_threads():
    """Threads of NumPy's BLAS, the one convscope controls (not PyTorch's, if loaded)."""
    return max(lib.get_num_threads() for lib in parallel._blas_libs())


def _step_grads():
    rng = np.random.default_rng(0)
    x = cs.tensor(rng.standard_normal((16, 3, 20, 20)).astype(np.float32), requires_grad=True)
    w = cs.tensor(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    (out * out).sum().backward()
    return out.numpy(), x.grad.numpy(), w.grad.numpy()


def test_thread_count_reaches_kernels_and_blas(restore_threads):
    cs.set_num_threads(1)
    assert cs.get_num_threads() == 1
    assert _blas_threads() == 1
    one = _step_grads()
    cs.set_num_threads(2)
    assert cs.get_num_threads() == 2
    assert _blas_threads() <= 2
    two = _step_grads()
    for a, b in zip(one, two):
        # chunk sizes follow the thread count, so sums over chunks (the weight gradient)
        # may round differently: equal to float32 precision, not bit for bit
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_default_restored(restore_threads):
    before = _blas_threads()
    cs.set_num_threads(1)
    cs.set_num_threads(None)
    assert _blas_threads() == before
    assert cs.get_num_threads() >= 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_bad_thread_counts_are_refused(bad, restore_threads):
    with pytest.raises(ValueError, match="positive integer or None"):
        cs.set_num_threads(bad)
