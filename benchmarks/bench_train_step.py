"""Time one training step and one inference pass in convscope and in PyTorch (CPU), same process.

    python benchmarks/bench_train_step.py [--backend native|numpy|reference] [--repeats 20] [--threads 2]
                                          [--batch 64]

Models: (a) LeNet-5 at batch 64 on 1x28x28, (b) CIFAR ResNet-20 with BatchNorm at batch
64 on 3x32x32. A training step is forward, cross-entropy, backward and an SGD-momentum
update. Prints the median time of each and the median per-block ratio convscope / PyTorch
(the two run in alternating blocks, so drifts in machine speed hit both alike).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time

import numpy as np


def torch_resnet20(tnn, F):
    """The same option-A CIFAR ResNet-20 in PyTorch (the benchmark's baseline)."""

    class Shortcut(tnn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.cin, self.cout, self.s = cin, cout, s

        def forward(self, x):
            e = self.cout - self.cin
            return F.pad(x[:, :, :: self.s, :: self.s], (0, 0, 0, 0, e // 2, e - e // 2))

    class Block(tnn.Module):
        def __init__(self, cin, c, s):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, c, 3, s, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c)
            self.conv2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c)
            self.shortcut = Shortcut(cin, c, s) if (s != 1 or cin != c) else tnn.Identity()

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    layers = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()]
    cin = 16
    for c, s in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(cin, c, s if i == 0 else 1))
            cin = c
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10)]
    return tnn.Sequential(*layers)


def torch_lenet5(tnn):
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    )


PAUSE_SECONDS = 0.3


#: The timer: wall-clock time, or with ``--clock cpu`` (one thread only) the calling thread's
#: CPU time, which leaves out the time the process waited for a core on a shared machine.
CLOCK = {"now": time.perf_counter}


def paired_times(fn_a, fn_b, repeats, block=5, warmup=3):
    """Median times of fn_a and fn_b, run in alternating blocks so machine drift hits both.

    Each block starts after a pause (PyTorch's OpenMP workers spin on the second core for a
    while after each call and would slow the other library down) and with ``warmup``
    untimed calls, so neither library is timed while its caches are cold from the other's block.

    Returns:
        (median time of a, median time of b, median of the per-block ratios a/b,
        ratio of the fastest times min(a)/min(b): the least disturbed by other load).
    """
    ta, tb, ratios = [], [], []
    for _ in range(max(1, repeats // block)):
        block_a, block_b = [], []
        for fn, out in ((fn_a, block_a), (fn_b, block_b)):
            time.sleep(PAUSE_SECONDS)
            for _ in range(warmup):
                fn()
            for _ in range(block):
                t0 = CLOCK["now"]()
                fn()
                out.append(CLOCK["now"]() - t0)
        ta += block_a
        tb += block_b
        ratios.append(statistics.median(block_a) / statistics.median(block_b))
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios), min(ta) / min(tb)


def bench_pair(name, ours, theirs, shape, repeats):
    import torch

    import convscope as cs
    from convscope import nn, optim

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, shape[0])
    xc, yc = cs.tensor(x), cs.tensor(y)
    xt, yt = torch.tensor(x), torch.tensor(y)
    oc = optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    ot = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)

    def step_c():
        oc.zero_grad()
        loss = nn.functional.cross_entropy(ours(xc), yc)
        loss.backward()
        oc.step()

    def step_t():
        ot.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(xt), yt)
        loss.backward()
        ot.step()

    def infer_c():
        with cs.no_grad():
            ours(xc)

    def infer_t():
        with torch.no_grad():
            theirs(xt)

    ours.train()
    theirs.train()
    tc, tt, train_ratio, train_best = paired_times(step_c, step_t, repeats)
    ours.eval()
    theirs.eval()
    ic, it, infer_ratio, infer_best = paired_times(infer_c, infer_t, repeats)
    print(
        f"{name:<22} train step  convscope {tc * 1e3:8.1f} ms   PyTorch {tt * 1e3:8.1f} ms   "
        f"ratio {train_ratio:5.2f} (fastest runs: {train_best:5.2f})"
    )
    print(
        f"{'':<22} inference   convscope {ic * 1e3:8.1f} ms   PyTorch {it * 1e3:8.1f} ms   "
        f"ratio {infer_ratio:5.2f} (fastest runs: {infer_best:5.2f})"
    )
    return dict(
        model=name,
        train_ratio=train_ratio,
        infer_ratio=infer_ratio,
        train_ratio_fastest=train_best,
        infer_ratio_fastest=infer_best,
        train_ms=tc * 1e3,
        torch_train_ms=tt * 1e3,
        infer_ms=ic * 1e3,
        torch_infer_ms=it * 1e3,
    )


def select_backend(cs, name):
    """Switch convscope to backend ``name`` (None: its default); returns the name in use."""
    try:
        backends = importlib.import_module("convscope.backends")
    except ImportError:
        if name not in (None, "numpy"):
            raise SystemExit("this convscope has no backend switch (convscope.backends)") from None
        return "numpy"
    if name is not None:
        backends.use(name)
    return backends.current()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", choices=["lenet5", "resnet20"], default=None)
    parser.add_argument("--backend", choices=["native", "numpy", "reference"], default=None)
    parser.add_argument("--batch", type=int, default=64, help="batch size (1 with --threads 1: latency)")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall", help="cpu: thread CPU time (needs --threads 1)"
    )
    args = parser.parse_args(argv)
    if args.clock == "cpu":
        if args.threads != 1:
            parser.error(f"--clock cpu measures the calling thread only: use --threads 1, got {args.threads}")
        CLOCK["now"] = time.thread_time
    import torch
    import torch.nn.functional as TF

    import convscope as cs
    from convscope import models

    torch.set_num_threads(args.threads)
    cs.set_num_threads(args.threads)  # the same thread count for both libraries
    cs.keep_freed_memory()  # as the convscope command does (README: Performance)
    backend = select_backend(cs, args.backend)
    print(
        f"threads: {args.threads}, backend {backend}, clock {args.clock} "
        f"(torch {torch.__version__}, numpy {np.__version__})"
    )
    results = []
    cs.manual_seed(0)
    torch.manual_seed(0)
    if args.only in (None, "lenet5"):
        results.append(
            bench_pair(
                f"LeNet-5 (batch {args.batch})",
                models.create("lenet5", in_channels=1),
                torch_lenet5(torch.nn),
                (args.batch, 1, 28, 28),
                args.repeats,
            )
        )
    if args.only in (None, "resnet20"):
        results.append(
            bench_pair(
                f"ResNet-20 (batch {args.batch})",
                models.create("resnet20"),
                torch_resnet20(torch.nn, TF),
                (args.batch, 3, 32, 32),
                args.repeats,
            )
        )
    return results


if __name__ == "__main__":
    main()
