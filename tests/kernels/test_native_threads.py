"""The native thread pool (threads.c): a pass's result does not depend on which thread ran which
chunk; calls from several Python threads at once, and from a forked child, are correct; errors
come back as exceptions."""

from __future__ import annotations

import ctypes
import multiprocessing
import threading

import numpy as np
import pytest

from convscope.kernels.native import _passes
from convscope.kernels.native import batchnorm as nbn
from convscope.kernels.native import conv as nconv
from convscope.kernels.native import elementwise as nel
from convscope.kernels.native import pool as npool
from convscope.kernels.native._lib import library
from convscope.kernels.parallel import get_num_threads, set_num_threads

pytestmark = pytest.mark.native

RNG = np.random.default_rng(0)
X = RNG.standard_normal((13, 5, 7, 9)).astype(np.float32)  # odd sizes: vector tails, uneven chunks
G = RNG.standard_normal(X.shape).astype(np.float32)
W = RNG.uniform(0.5, 1.5, 5).astype(np.float32)
B = RNG.standard_normal(5).astype(np.float32)


def _passes_with(threads: int):
    """Every pass the pool runs, on 3 units per chunk, ``threads`` threads."""
    out, mean, var, invstd = nbn.batch_norm_train_forward(X, W, B, 1e-5, relu=True)
    results = [out, mean, var, invstd]
    results += nbn.batch_norm_train_backward(G, X, mean, invstd, W, True, out)
    results += [nbn.channel_affine_relu(X, W, B), nbn.channel_sums(G)]
    results += [nel.relu_forward(X), nel.relu_backward(G, X), nel.add_relu(X, G)]
    pooled, idx = npool.max_pool2d_forward(X, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), False)
    results += [pooled, idx, npool.max_pool2d_backward(pooled, idx, X.shape)]
    avg = npool.avg_pool2d_forward(X, (2, 2), (2, 2), ((0, 0), (0, 0)), True, True)
    results += [avg, npool.avg_pool2d_backward(avg, X.shape, (2, 2), (2, 2), ((0, 0), (0, 0)), True, True)]
    return results


def test_chunks_give_the_same_result_on_any_number_of_threads(monkeypatch):
    runs = []
    for threads in (1, 2, 3):
        for module in (nbn, nel, npool):
            monkeypatch.setattr(module, "plan", lambda count, nbytes, align=1, t=threads: (3, t))
        runs.append(_passes_with(threads))
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _conv(x, w):
    y, saved = nconv.conv2d_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    gx, gw, _ = nconv.conv2d_backward(y, saved)
    return y, gx, gw


def test_python_threads_calling_at_once_get_their_own_results():
    """One job runs on the pool at a time; a call meanwhile runs its chunks on its own thread."""
    before = get_num_threads()
    set_num_threads(2)
    try:
        rng = np.random.default_rng(1)
        inputs = [rng.standard_normal((16, 8, 12, 12)).astype(np.float32) for _ in range(4)]
        w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
        expected = [_conv(x, w) for x in inputs]
        got: dict[int, list] = {}

        def worker(i: int) -> None:
            got[i] = [_conv(inputs[i], w) for _ in range(5)]

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(got) == [0, 1, 2, 3]
        for i, runs in got.items():
            for run in runs:
                for a, b in zip(run, expected[i], strict=True):
                    np.testing.assert_array_equal(a, b)
    finally:
        set_num_threads(before)


def _child(queue) -> None:
    set_num_threads(2)
    x = np.ones((16, 4, 10, 10), np.float32)
    w = np.ones((8, 4, 3, 3), np.float32)
    queue.put(float(_conv(x, w)[0].sum()))


def test_a_forked_child_starts_its_own_pool():
    before = get_num_threads()
    set_num_threads(2)
    try:
        x = np.ones((16, 4, 10, 10), np.float32)
        w = np.ones((8, 4, 3, 3), np.float32)
        expected = float(_conv(x, w)[0].sum())  # the parent's pool is running
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        assert queue.get(timeout=5) == expected
    finally:
        set_num_threads(before)


def test_an_unknown_pass_is_an_error():
    job = _passes.PassJob(kind=99, count=4, step=1, c=1, l=1)
    assert library().cs_pass_parallel(ctypes.byref(job), 2) == -2
    with pytest.raises(KeyError):
        _passes.run_pass(library(), "no_such_pass", 4, 1, 2)
