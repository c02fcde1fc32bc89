"""convscope.set_num_threads / get_num_threads: the thread count reaches the kernels and BLAS,
results do not depend on it, and bad values are refused."""

import threading

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


def test_thread_count_reaches_kernels_and_blas(restore_threads, monkeypatch):
    from convscope.kernels import conv

    monkeypatch.setattr(conv, "PARALLEL_MIN_FLOPS", 0)  # this small conv in threads too
    cs.set_num_threads(1)
    assert cs.get_num_threads() == 1
    assert _blas_threads() == 1
    one = _step_grads()
    cs.set_num_threads(2)
    assert cs.get_num_threads() == 2
    assert _blas_threads() == 2
    two = _step_grads()
    assert any(t.name.startswith("convscope-") for t in threading.enumerate())
    for a, b in zip(one, two, strict=True):
        # chunk sizes follow the thread count, so sums over chunks (the weight gradient)
        # may round differently: equal to float32 precision, not bit for bit
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_default_restored(restore_threads):
    import os

    before = _blas_threads()
    cs.set_num_threads(1)
    cs.set_num_threads(None)
    assert _blas_threads() == before
    assert cs.get_num_threads() == min(len(os.sched_getaffinity(0)), 8)


def test_set_inside_a_kernel_applies_when_it_ends(restore_threads):
    # a kernel holds BLAS at one thread; a count set meanwhile takes effect when it lets go
    cs.set_num_threads(2)
    seen = []

    def body(a, b):
        cs.set_num_threads(3)
        seen.append(_blas_threads())

    parallel.run_chunks(1, 1, False, body)
    assert seen == [1]
    assert _blas_threads() == 3 and cs.get_num_threads() == 3


def test_without_threadpoolctl_kernels_stay_serial(restore_threads, monkeypatch):
    monkeypatch.setattr(parallel, "ThreadpoolController", None)
    cs.set_num_threads(4)
    assert cs.get_num_threads() == 1
    main = threading.get_ident()
    threads = set()
    parallel.run_chunks(6, 1, True, lambda a, b: threads.add(threading.get_ident()))
    assert threads == {main}


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_bad_thread_counts_are_refused(bad, restore_threads):
    with pytest.raises(ValueError, match="positive integer or None"):
        cs.set_num_threads(bad)


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_run_chunks_returns_only_after_workers_stop(error, restore_threads):
    # an error (or Ctrl-C) in the calling thread's chunk: the workers finish the chunk they
    # are in, start no new one, and only then does the exception reach the caller
    import time

    cs.set_num_threads(2)
    active, ran, lock = [0], [], threading.Lock()
    main = threading.get_ident()

    def body(a, b):
        with lock:
            active[0] += 1
            ran.append(a)
        try:
            if threading.get_ident() == main and len(ran) > 1:
                raise error("stop")
            time.sleep(0.002)
        finally:
            with lock:
                active[0] -= 1

    with pytest.raises(error):
        parallel.run_chunks(200, 1, True, body)
    assert active[0] == 0
    assert len(ran) < 200


def test_worker_exception_is_raised_in_caller(restore_threads):
    cs.set_num_threads(2)
    main = threading.get_ident()

    def body(a, b):
        if threading.get_ident() != main:
            raise RuntimeError(f"chunk {a} failed")
        import time

        time.sleep(0.01)  # leave chunks to the worker

    with pytest.raises(RuntimeError, match="failed"):
        parallel.run_chunks(8, 1, True, body)


def test_empty_range(restore_threads):
    cs.set_num_threads(2)
    assert parallel.run_chunks(0, 1, True, lambda a, b: 1 / 0) == []


def test_ctrl_c_while_waiting_for_a_worker(restore_threads):
    # a real SIGINT lands while the caller waits for a worker still in its chunk
    import os
    import signal
    import time

    cs.set_num_threads(2)
    main = threading.get_ident()
    finished = []

    def body(a, b):
        if threading.get_ident() == main:
            time.sleep(0.02)  # leaves the second chunk to the worker
        else:
            time.sleep(0.05)  # the caller is now waiting for this worker
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished.append(a)

    with pytest.raises(KeyboardInterrupt):
        parallel.run_chunks(2, 1, True, body)
    assert finished  # the worker's chunk had ended before the interrupt reached the caller
