"""Pooling kernels: convscope (NumPy) vs PyTorch CPU, float32.

Run:  python benchmarks/bench_pool_kernels.py [--repeat R] [--number K] [--threads T]

Prints the best-of-R mean time per call (microseconds) and ours/torch
(below 1.0 means convscope is faster). Both libraries get --threads threads
(default 2, this machine's cores); our pooling kernels are single-threaded NumPy.
Best-of-R is used because the machine is shared: a busy neighbour slows
torch's threaded kernels far more than ours.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from convscope.kernels.memory import keep_freed_memory  # noqa: E402
from convscope.kernels.parallel import set_num_threads  # noqa: E402
from convscope.kernels.pool import (  # noqa: E402
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)


def best_us(fn, repeat, number):
    """Best-of-``repeat`` mean time of ``number`` calls, in microseconds."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    set_num_threads(args.threads)  # ours: the same thread count
    keep_freed_memory()  # as the convscope command does (README: Performance)
    rng = np.random.default_rng(0)
    rows = []

    def add(name, ours, theirs):
        t_ours = best_us(ours, args.repeat, args.number)
        t_torch = best_us(theirs, args.repeat, args.number)
        rows.append((name, t_ours, t_torch))

    k = (2, 2)  # the window and stride of every case below
    for shape in [(64, 6, 28, 28), (64, 16, 10, 10)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        xt = torch.from_numpy(x)

        def ours_fwd(x=x, k=k):
            return max_pool2d_forward(x, k, k, ((0, 0), (0, 0)), (1, 1), False)

        def torch_fwd(xt=xt):
            with torch.no_grad():
                return F.max_pool2d(xt, 2, 2, return_indices=True)

        add(f"max_pool2d 2x2/2 fwd      {shape}", ours_fwd, torch_fwd)

        g = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2), dtype=np.float32)
        gt = torch.from_numpy(g)
        xr = xt.clone().requires_grad_()

        def ours_fb(x=x, g=g, k=k):
            out, idx = max_pool2d_forward(x, k, k, ((0, 0), (0, 0)), (1, 1), False)
            return max_pool2d_backward(g, idx, x.shape)

        def torch_fb(xr=xr, gt=gt):
            out = F.max_pool2d(xr, 2, 2)
            (grad,) = torch.autograd.grad(out, xr, gt)
            return grad

        add(f"max_pool2d 2x2/2 fwd+bwd  {shape}", ours_fb, torch_fb)

    shape = (64, 64, 8, 8)
    x = rng.standard_normal(shape, dtype=np.float32)
    xt = torch.from_numpy(x)
    g = rng.standard_normal((64, 64, 1, 1), dtype=np.float32)
    gt = torch.from_numpy(g)
    xr = xt.clone().requires_grad_()

    def torch_gap(xt=xt):
        with torch.no_grad():
            return F.adaptive_avg_pool2d(xt, 1)

    add(f"adaptive_avg_pool2d 1x1 fwd     {shape}", lambda: adaptive_avg_pool2d_forward(x, (1, 1)), torch_gap)

    def ours_gap_fb():
        adaptive_avg_pool2d_forward(x, (1, 1))
        return adaptive_avg_pool2d_backward(g, x.shape)

    def torch_gap_fb():
        out = F.adaptive_avg_pool2d(xr, 1)
        (grad,) = torch.autograd.grad(out, xr, gt)
        return grad

    add(f"adaptive_avg_pool2d 1x1 fwd+bwd {shape}", ours_gap_fb, torch_gap_fb)

    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'ours us':>9}  {'torch us':>9}  {'ours/torch':>10}")
    for name, t_ours, t_torch in rows:
        print(f"{name:<{width}}  {t_ours:9.1f}  {t_torch:9.1f}  {t_ours / t_torch:10.2f}")


if __name__ == "__main__":
    main()
