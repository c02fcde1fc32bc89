"""Data-parallel training throughput over MPI: 1 vs 2 processes, one compute thread each.

    python benchmarks/bench_distributed.py [--steps 20] [--repeats 3] [--batch 64]

For LeNet-5 on MNIST (the 10,000 test images in /work/shared/data/mnist, or $MNIST_DIR) and
ResNet-20 on CIFAR-shaped 3x32x32 inputs (random pixels: no CIFAR-10 on disk here, and speed
does not depend on the pixel values), launches ``mpiexec -n 1`` and ``mpiexec -n 2`` in
alternating blocks (so a drift in the machine's load hits both alike) and reports the median of
each: samples/second of whole training steps (``N x batch`` per step: the batch is per process,
as with ``convscope train --distributed``), the time of the gradient Allreduce, and the time a
rank waits for the other before it (measured apart with a Barrier, so the Allreduce figure is
the communication alone). Scaling = samples/s with 2 processes / samples/s with 1.

On a shared machine the wall-clock figures include time the OS gave to other processes; the
CPU time each rank spends per step (waits excluded) is also printed, with the scaling it implies
on dedicated cores: 2 x (CPU per step, 1 process) / (CPU per step and rank, 2 processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

MNIST = os.environ.get("MNIST_DIR", "/work/shared/data/mnist")


def worker(model_name: str, steps: int, warmup: int, batch: int) -> None:
    import convscope
    from convscope import distributed as dist
    from convscope import models, optim
    from convscope.autograd.tensor import Tensor
    from convscope.data import DataLoader, Normalizer, load_dataset
    from convscope.distributed import comm
    from convscope.nn import functional as F

    world = dist.init()
    rank, size = dist.rank(), dist.size()
    convscope.set_num_threads(1)
    convscope.manual_seed(0)
    if model_name == "lenet5":
        train = load_dataset(f"mnist:{MNIST}", test_split=0.2, seed=0).train
        model = models.create("lenet5", num_classes=10, in_channels=1)
    else:
        from convscope.data import ArrayDataset

        rng = np.random.default_rng(0)
        x = rng.random((4096, 3, 32, 32), dtype=np.float32)
        train = ArrayDataset(x, rng.integers(0, 10, 4096))
        model = models.create("resnet20", num_classes=10, in_channels=3)
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sampler = dist.DistributedSampler(train, seed=0)
    loader = DataLoader(train, batch, seed=0, sampler=sampler, normalizer=Normalizer.fit(train.x))
    batches = iter(b for epoch in range(1000) for b in loader.iter_epoch(epoch))
    compute = wait = reduce = cpu_compute = cpu_reduce = 0.0
    world.Barrier()
    for i in range(warmup + steps):
        if i == warmup:
            world.Barrier()
            t_start, compute, wait, reduce = time.perf_counter(), 0.0, 0.0, 0.0
            cpu_compute = cpu_reduce = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        x, y = next(batches)
        loss = F.cross_entropy(ddp(Tensor._wrap(x, False)), Tensor._wrap(y, False))
        opt.zero_grad()
        loss.backward()
        t1, c1 = time.perf_counter(), time.process_time()
        world.Barrier()  # the wait for the slower rank, kept out of the Allreduce figure
        t2, c2 = time.perf_counter(), time.process_time()
        ddp.allreduce_gradients()
        t3, c3 = time.perf_counter(), time.process_time()
        opt.step()
        compute += (t1 - t0) + (time.perf_counter() - t3)
        cpu_compute += (c1 - c0) + (time.process_time() - c3)
        cpu_reduce += c3 - c2
        wait += t2 - t1
        reduce += t3 - t2
    world.Barrier()
    total = time.perf_counter() - t_start
    params = sum(p.data.size for p in model.parameters())
    result = {
        "samples_per_s": size * batch * steps / total,
        "step_ms": 1e3 * total / steps,
        "allreduce_ms": 1e3 * reduce / steps,
        "wait_ms": 1e3 * wait / steps,
        "compute_ms": 1e3 * compute / steps,
        "cpu_compute_ms": 1e3 * cpu_compute / steps,
        "cpu_allreduce_ms": 1e3 * cpu_reduce / steps,
        "params": params,
    }
    results = comm.allgather_object(result)
    if rank == 0:
        merged = dict(results[0], allreduce_ms=max(r["allreduce_ms"] for r in results))
        for key in ("cpu_compute_ms", "cpu_allreduce_ms"):
            merged[key] = max(r[key] for r in results)
        print("RESULT " + json.dumps(merged), flush=True)


def launch(n: int, model: str, args) -> dict:
    cmd = ["mpiexec", "-n", str(n), sys.executable, __file__, "--worker", model]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    line = next(row for row in out.stdout.splitlines() if row.startswith("RESULT "))
    return json.loads(line[7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="per process")
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.warmup, args.batch)
        return
    print(f"batch {args.batch} per process, {args.steps} timed steps, {args.repeats} alternating blocks")
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[0]} (cores: {os.cpu_count()})")
    for model in args.models.split(","):
        runs: dict = {1: [], 2: []}
        for _ in range(args.repeats):
            for n in (1, 2):
                runs[n].append(launch(n, model, args))
        med = {n: {k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]} for n in runs}
        scale = [b["samples_per_s"] / a["samples_per_s"] for a, b in zip(runs[1], runs[2], strict=True)]
        size_mb = 4 * med[1]["params"] / 1e6
        print(f"\n{model} ({int(med[1]['params']):,} parameters, {size_mb:.2f} MB of gradients)")
        for n in (1, 2):
            m = med[n]
            print(
                f"  {n} process{'es' if n > 1 else ''}: {m['samples_per_s']:8.1f} samples/s, step "
                f"{m['step_ms']:7.1f} ms (compute {m['compute_ms']:.1f}, wait {m['wait_ms']:.2f}, allreduce "
                f"{m['allreduce_ms']:.3f} = {100 * m['allreduce_ms'] / m['step_ms']:.2f}% of the step)"
            )
        blocks = ", ".join(f"{s:.2f}" for s in scale)
        print(f"  scaling 2 vs 1: {statistics.median(scale):.2f}x (blocks: {blocks})")
        # CPU seconds a step costs each rank, waits excluded: what the step would take on cores of
        # its own (the wall-clock figures above include time the machine gave to other processes)
        one = med[1]["cpu_compute_ms"] + med[1]["cpu_allreduce_ms"]
        two = med[2]["cpu_compute_ms"] + med[2]["cpu_allreduce_ms"]
        print(
            f"  CPU time per step and rank: 1 process {one:.1f} ms, 2 processes {two:.1f} ms "
            f"(allreduce {med[2]['cpu_allreduce_ms']:.3f}): 2 x {one:.1f} / {two:.1f} = {2 * one / two:.2f}x"
        )
    with open("/proc/loadavg") as f:
        print(f"\nload average at the end: {f.read().split()[0]}")


if __name__ == "__main__":
    main()
