"""Peak resident memory of a CIFAR ResNet-20 training step (batch 64), each library in its
own process: convscope on a chosen backend, and PyTorch.

    python benchmarks/bench_memory.py [--backend native] [--steps 3] [--threads 2]

Each child process builds the model, runs ``--steps`` training steps (forward,
cross-entropy, backward, SGD-momentum update) and reports its peak RSS (``ru_maxrss``) and
its RSS after imports, so the difference is what the training steps added on top of the
interpreter and the library.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
lib, backend, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
y = rng.integers(0, 10, 64)
if lib == "torch":
    import torch, torch.nn.functional as TF
    sys.path.insert(0, sys.argv[5])
    from bench_train_step import torch_resnet20
    torch.set_num_threads(threads)
    model = torch_resnet20(torch.nn, TF)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.tensor(x), torch.tensor(y)
    base = rss_mb()
    for _ in range(steps):
        opt.zero_grad(); TF.cross_entropy(model(xt), yt).backward(); opt.step()
else:
    import convscope as cs
    from convscope import models, nn, optim
    cs.set_num_threads(threads)
    cs.backends.use(backend)
    model = models.create("resnet20")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xc, yc = cs.tensor(x), cs.tensor(y)
    base = rss_mb()
    for _ in range(steps):
        opt.zero_grad(); nn.functional.cross_entropy(model(xc), yc).backward(); opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"lib": lib, "backend": backend, "base_mb": base, "peak_mb": peak}))
"""


def run(lib: str, backend: str, steps: int, threads: int) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    src = os.path.join(here, "..", "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-c", CHILD, lib, backend, str(steps), str(threads), here]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["native", "numpy", "reference"], default="native")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    results = [run("convscope", args.backend, args.steps, args.threads)]
    results.append(run("torch", "-", args.steps, args.threads))
    for r in results:
        name = r["lib"] if r["lib"] == "torch" else f"convscope ({r['backend']})"
        print(f"{name:22s} peak RSS {r['peak_mb']:7.1f} MB   after imports {r['base_mb']:7.1f} MB")
    return results


if __name__ == "__main__":
    main()
