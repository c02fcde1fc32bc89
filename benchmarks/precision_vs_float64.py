"""How far float32 results stray from the exact (float64) answer: PyTorch's and convscope's.

    python benchmarks/precision_vs_float64.py [--models resnet34,vgg11_bn] [--modes eval,train]
                                              [--backends numpy,native] [--layers]

For each zoo model and mode the float64 result (convscope float64; it equals PyTorch's float64
to ~1e-12, printed as ``t64``) is the yardstick. Printed per run: the largest error, relative to
max(1, max|float64|), of the output, the input gradient and the worst parameter gradient, for
PyTorch float32 (``torch32``) and convscope float32 on each backend. A float32 library should be
about as close to float64 as PyTorch's float32 is.

``--branches`` also prints each float32 run's error against the float64 result taken along that
run's own branches (the same ReLUs active, the same max-pool winners), which leaves out the
jumps where a ReLU input within a rounding of zero took the other side: what remains is the
accumulated round-off.

``--layers`` also prints, per module, the forward output's error and the error of the gradient
flowing into it, to find the layer where convscope's error grows faster than PyTorch's.

Input and upstream gradient as in tests/test_torch_bridge.py (32x32 for the ImageNet models,
batch 8; random seed 0; the backward seed ``g`` from seed 1).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

import convscope as cs
from convscope import models
from convscope.torch import to_torch


def model_input(name: str) -> np.ndarray:
    """The input tests/test_torch_bridge.py uses for ``name`` (float64)."""
    shape = models.model_info(name).input_size
    rng = np.random.default_rng(0)
    if len(shape) == 2:
        return rng.standard_normal((4, shape[0], 64)).astype(np.float32).astype(np.float64)
    c, h, _ = shape
    sizes = {"alexnet": 64, "unet": 16, "simple": 28, "lenet5": 28, "tinyvgg": 64}
    size = sizes.get(name, min(h, 16 if h == 32 else 32))
    n = 8 if size == 32 else 4
    return rng.standard_normal((n, c, size, size)).astype(np.float32).astype(np.float64)


def _eval_train(model, train: bool) -> None:
    model.train(train)
    for m in model.modules():
        if type(m).__name__ == "Dropout":
            m.train(False)


KINKS = ("ReLU", "MaxPool2d")


def _record_kinks(model, calls: dict) -> None:
    """Forward hooks that append each ReLU / MaxPool2d call's input (float32) to calls[module name]."""
    for mname, m in model.named_modules():
        if type(m).__name__ in KINKS:

            def hook(mod, inp, out, mname=mname):
                a = inp[0]
                a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a.data)
                calls[mname].append(a.copy())

            m.register_forward_hook(hook)


def _follow_kinks(twin, calls: dict) -> None:
    """Forward hooks on a float64 torch twin: every ReLU / MaxPool2d takes the branch the
    recorded float32 run took (its active set, its window winners)."""
    seen: dict = defaultdict(int)
    for mname, m in twin.named_modules():
        if type(m).__name__ in KINKS:

            def hook(mod, inp, out, mname=mname):
                a32 = torch.from_numpy(calls[mname][seen[mname]])
                seen[mname] += 1
                if isinstance(mod, torch.nn.ReLU):
                    return inp[0] * (a32 > 0).to(inp[0].dtype)
                _, idx = torch.nn.functional.max_pool2d(
                    a32, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                    return_indices=True,
                )  # fmt: skip
                return inp[0].flatten(2).gather(2, idx.flatten(2)).view_as(out)

            m.register_forward_hook(hook)


def run_convscope(name: str, dtype, x64: np.ndarray, train: bool, layers: bool, calls=None):
    """(output, input grad, {param: grad}, {module: (out, grad_out)}) of convscope in ``dtype``."""
    cs.manual_seed(0)
    model = models.create(name).to(dtype)
    _eval_train(model, train)
    if calls is not None:
        _record_kinks(model, calls)
    trace: dict = {}
    if layers:
        for mname, m in model.named_modules():
            if mname and not list(m.children()):

                def hook(mod, inp, out, mname=mname):
                    out.retain_grad()
                    trace[mname] = out

                m.register_forward_hook(hook)
    x = cs.tensor(x64.astype(dtype), dtype=dtype, requires_grad=True)
    out = model(x)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    (out * cs.tensor(g, dtype=dtype)).sum().backward()
    grads = {k: np.asarray(p.grad.data, np.float64) for k, p in model.named_parameters()}
    acts = {
        k: (np.asarray(t.data, np.float64), None if t.grad is None else np.asarray(t.grad.data, np.float64))
        for k, t in trace.items()
    }
    return np.asarray(out.data, np.float64), np.asarray(x.grad.data, np.float64), grads, acts


def run_torch(name: str, dtype, x64: np.ndarray, train: bool, layers: bool, calls=None, follow=None):
    """The same for PyTorch (the twin made by convscope.torch.to_torch); ``calls``: record the
    kinks' inputs; ``follow``: take the branches recorded there."""
    cs.manual_seed(0)
    twin = to_torch(models.create(name))
    twin = twin.double() if dtype == np.float64 else twin.float()
    _eval_train(twin, train)
    if calls is not None:
        _record_kinks(twin, calls)
    if follow is not None:
        _follow_kinks(twin, follow)
    trace: dict = {}
    if layers:
        for mname, m in twin.named_modules():
            if mname and not list(m.children()):

                def hook(mod, inp, out, mname=mname):
                    if out.requires_grad:
                        out.retain_grad()
                    trace[mname] = out

                m.register_forward_hook(hook)
    x = torch.tensor(x64.astype(dtype), requires_grad=True)
    out = twin(x)
    g = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(dtype)
    (out * torch.from_numpy(g)).sum().backward()
    grads = {k: p.grad.double().numpy() for k, p in twin.named_parameters()}
    acts = {
        k: (t.detach().double().numpy(), None if t.grad is None else t.grad.double().numpy())
        for k, t in trace.items()
    }
    return out.detach().double().numpy(), x.grad.double().numpy(), grads, acts


def rel(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max(1, max |ref|)."""
    if ref.size == 0:
        return 0.0
    return float(np.abs(a - ref).max() / max(1.0, float(np.abs(ref).max())))


def summary(res, ref) -> tuple[float, float, float, str]:
    out, gx, grads, _ = res
    out_r, gx_r, grads_r, _ = ref
    worst, worst_name = 0.0, ""
    for k, v in grads_r.items():
        e = rel(grads[k], v)
        if e > worst:
            worst, worst_name = e, k
    return rel(out, out_r), rel(gx, gx_r), worst, worst_name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet34,resnet50,vgg11_bn")
    p.add_argument("--modes", default="eval,train")
    built = [b for b in ("numpy", "native") if b in cs.backends.available()]
    p.add_argument("--backends", default=",".join(built))
    p.add_argument("--layers", action="store_true")
    p.add_argument("--branches", action="store_true")
    args = p.parse_args()
    print(f"{'model':10} {'mode':5} {'who':9} {'output':>9} {'input g':>9} {'param g':>9}  worst param")
    for name in args.models.split(","):
        x64 = model_input(name)
        for mode in args.modes.split(","):
            train = mode == "train"
            with cs.backends.use("numpy"):
                ref = run_convscope(name, np.float64, x64, train, args.layers)
            runs = {"t64": run_torch(name, np.float64, x64, train, args.layers)}
            kinks: dict = {"torch32": defaultdict(list)}
            runs["torch32"] = run_torch(name, np.float32, x64, train, args.layers, calls=kinks["torch32"])
            for b in args.backends.split(","):
                kinks[b + "32"] = defaultdict(list)
                with cs.backends.use(b):
                    runs[b + "32"] = run_convscope(name, np.float32, x64, train, args.layers, kinks[b + "32"])
            for who, res in runs.items():
                o, gx, gp, gname = summary(res, ref)
                print(f"{name:10} {mode:5} {who:9} {o:9.2e} {gx:9.2e} {gp:9.2e}  {gname}")
            if args.branches:
                for who, calls in kinks.items():
                    along = run_torch(name, np.float64, x64, train, False, follow=calls)
                    o, gx, gp, gname = summary(runs[who], along)
                    print(f"{name:10} {mode:5} {who + '/b':9} {o:9.2e} {gx:9.2e} {gp:9.2e}  {gname}")
            if args.layers:
                keys = list(ref[3])
                whos = [w for w in runs if w != "t64"]
                print("  layer" + "".join(f" {w + ' fwd':>13} {w + ' grad':>13}" for w in whos))
                for k in keys:
                    cells = []
                    for w in whos:
                        a, ga = runs[w][3].get(k, (None, None))
                        r, gr = ref[3][k]
                        cells.append("-" if a is None else f"{rel(a, r):.2e}")
                        cells.append("-" if ga is None or gr is None else f"{rel(ga, gr):.2e}")
                    print(f"  {k:28}" + "".join(f" {c:>13}" for c in cells))


if __name__ == "__main__":
    main()
