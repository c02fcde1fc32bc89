"""Time convscope's conv kernels against torch.nn.functional.conv2d, per layer shape.

Run:  python benchmarks/bench_conv_kernels.py [--backend numpy] [--reps 8] [--blocks 6] [--threads 2]
                                             [--stat median] [--clock wall|cpu]

Shapes are the conv layers of LeNet-5 and CIFAR ResNet-20 at batch 64,
float32. "fwd+bwd" is one forward plus the backward a training step needs
(no input gradient for a network's first layer). Ours and PyTorch run in
alternating blocks in one process with the same thread count (the first call
of each block is discarded: both libraries' thread pools spin for a while
after a call and would slow the other one down). Times are per call in ms;
ratio = ours / torch. The "per step" lines weight each layer by how often it
occurs in the network (ResNet-20: 1 stem, 6 + 5 + 5 3x3 stride-1, 2 stride-2;
the two 1x1 shortcuts are the option-B variant and are not counted).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from convscope.kernels.memory import keep_freed_memory  # noqa: E402
from convscope.kernels.parallel import set_num_threads  # noqa: E402

# name, x shape, weight shape, stride, padding, needs input grad, count per LeNet / ResNet-20 step
SHAPES = [
    ("lenet.conv1 6@5x5 p2", (64, 1, 28, 28), (6, 1, 5, 5), 1, 2, False, ("lenet", 1)),
    ("lenet.conv2 16@5x5", (64, 6, 14, 14), (16, 6, 5, 5), 1, 0, True, ("lenet", 1)),
    ("r20.stem 16@3x3", (64, 3, 32, 32), (16, 3, 3, 3), 1, 1, False, ("r20", 1)),
    ("r20.s1 16@3x3", (64, 16, 32, 32), (16, 16, 3, 3), 1, 1, True, ("r20", 6)),
    ("r20.s2 down 32@3x3/2", (64, 16, 32, 32), (32, 16, 3, 3), 2, 1, True, ("r20", 1)),
    ("r20.s2 32@3x3", (64, 32, 16, 16), (32, 32, 3, 3), 1, 1, True, ("r20", 5)),
    ("r20.s3 down 64@3x3/2", (64, 32, 16, 16), (64, 32, 3, 3), 2, 1, True, ("r20", 1)),
    ("r20.s3 64@3x3", (64, 64, 8, 8), (64, 64, 3, 3), 1, 1, True, ("r20", 5)),
    ("r20.s2 shortcut 32@1x1/2", (64, 16, 32, 32), (32, 16, 1, 1), 2, 0, True, ("r20", 0)),
    ("r20.s3 shortcut 64@1x1/2", (64, 32, 16, 16), (64, 32, 1, 1), 2, 0, True, ("r20", 0)),
]


#: The timer: wall-clock time, or with ``--clock cpu`` (one thread only) the calling thread's
#: CPU time, which leaves out the time the process waited for a core on a shared machine.
CLOCK = {"now": time.perf_counter}


def time_blocks(fns, blocks: int, reps: int, stat) -> list[float]:
    """Per-call ms of each fn, run in alternating blocks (first call of a block discarded)."""
    times = [[] for _ in fns]
    for _ in range(blocks):
        for i, fn in enumerate(fns):
            fn()
            for _ in range(reps):
                t0 = CLOCK["now"]()
                fn()
                times[i].append(CLOCK["now"]() - t0)
    return [1e3 * float(stat(t)) for t in times]


def conv_kernels(backend: str):
    """The conv kernel module of a backend (``numpy``: convscope.kernels.conv)."""
    if backend == "numpy":
        return importlib.import_module("convscope.kernels.conv")
    if backend == "native":
        from convscope.kernels.native import load_error

        if load_error() is not None:
            raise SystemExit(f"the native backend is not available: {load_error()}")
    return importlib.import_module(f"convscope.kernels.{backend}.conv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2, help="threads for both libraries")
    ap.add_argument("--stat", choices=["median", "min"], default="median")
    ap.add_argument("--backend", choices=["native", "numpy", "reference"], default="numpy")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: thread CPU time")
    args = ap.parse_args()
    if args.clock == "cpu":
        if args.threads != 1:
            ap.error(f"--clock cpu measures the calling thread only: use --threads 1, got {args.threads}")
        CLOCK["now"] = time.thread_time
    kernels = conv_kernels(args.backend)
    conv2d_forward, conv2d_backward = kernels.conv2d_forward, kernels.conv2d_backward
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    set_num_threads(args.threads)  # ours: the same thread count
    keep_freed_memory()  # as the convscope command does (README: Performance)
    stat = np.median if args.stat == "median" else np.min
    rng = np.random.default_rng(0)
    head = (
        f"{'layer':26s} {'fwd ours':>9s} {'torch':>7s} {'ratio':>6s} | "
        f"{'f+b ours':>9s} {'torch':>7s} {'ratio':>6s}"
    )
    print(f"{args.stat} ms, {args.threads} threads, batch 64, float32, backend {args.backend}")
    print(head)
    print("-" * len(head))
    totals: dict[str, np.ndarray] = {}
    for name, xs, ws, s, p, need_in, (net, count) in SHAPES:
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32) * np.float32(0.1)
        b = rng.standard_normal(ws[0], dtype=np.float32)
        conv_args = ((s, s), ((p, p), (p, p)), (1, 1), 1)
        out, _ = conv2d_forward(x, w, b, *conv_args)
        g = rng.standard_normal(out.shape, dtype=np.float32)
        xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
        xt.requires_grad_(need_in)
        wt.requires_grad_(True)
        bt.requires_grad_(True)

        def ours_f(x=x, w=w, b=b, conv_args=conv_args):
            conv2d_forward(x, w, b, *conv_args)

        def ours_fb(x=x, w=w, b=b, g=g, conv_args=conv_args, need_in=need_in):
            _, saved = conv2d_forward(x, w, b, *conv_args)
            conv2d_backward(g, saved, need_input=need_in)

        def torch_f(xt=xt, wt=wt, bt=bt, s=s, p=p):
            with torch.no_grad():
                F.conv2d(xt, wt, bt, s, p)

        def torch_fb(xt=xt, wt=wt, bt=bt, gt=gt, s=s, p=p):
            F.conv2d(xt, wt, bt, s, p).backward(gt)

        t = np.array(time_blocks([ours_f, torch_f, ours_fb, torch_fb], args.blocks, args.reps, stat))
        totals[net] = totals.get(net, np.zeros(4)) + count * t
        print(
            f"{name:26s} {t[0]:9.3f} {t[1]:7.3f} {t[0] / t[1]:6.2f} | "
            f"{t[2]:9.3f} {t[3]:7.3f} {t[2] / t[3]:6.2f}"
        )
    print("-" * len(head))
    for net, label in (("lenet", "LeNet-5 convs per step"), ("r20", "ResNet-20 convs per step")):
        t = totals[net]
        print(
            f"{label:26s} {t[0]:9.3f} {t[1]:7.3f} {t[0] / t[1]:6.2f} | "
            f"{t[2]:9.3f} {t[3]:7.3f} {t[2] / t[3]:6.2f}"
        )


if __name__ == "__main__":
    main()
