"""`convscope experiment depth`: plain vs residual networks at several depths (He et al. 2015, Fig. 1)."""

from __future__ import annotations

import argparse
import sys

from .common import UsageError, add_common, emit_json

HELP = "run a paper's experiment in miniature (depth: plain vs residual networks, He et al. 2015 Fig. 1)"
DEPTH_DESCRIPTION = """Train CIFAR-style plain networks and their residual twins (same layers and widths,
only the identity shortcuts differ) at each depth with the same data, budget, seed and data order,
and draw training loss and test error of all of them in one figure (OUT/depth.png).
Default data: scikit-learn's digits upscaled to 32x32; mnist:PATH or cifar10:PATH work too."""


def add_parser(sub):
    p = sub.add_parser("experiment", help=HELP, description=HELP)
    inner = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    inner.required = True
    d = inner.add_parser(
        "depth",
        help="plain vs residual at several depths",
        description=DEPTH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--data", help="data set spec (default: digits at 32x32)")
    d.add_argument("--depths", default="8,20,56", help="comma-separated depths 6n+2 (default: 8,20,56)")
    d.add_argument("--epochs", type=int, default=10, help="epochs per network (default: 10)")
    d.add_argument("--batch-size", type=int, default=64, dest="batch_size", help="default: 64")
    d.add_argument("--lr", type=float, default=0.1, help="SGD learning rate, cosine-annealed (default: 0.1)")
    d.add_argument(
        "--widths",
        default="8,16,32",
        help="filters of the three stages (default: 8,16,32; the paper: 16,32,64)",
    )
    d.add_argument("--seed", type=int, default=0, help="default: 0")
    d.add_argument(
        "--out", default="runs/depth", help="folder for depth.png and depth.json (default: runs/depth)"
    )
    add_common(d)
    d.set_defaults(handler=run_depth)
    add_common(p)
    return p


def run_depth(args) -> int:
    import json
    import os

    from ..experiments.depth import parse_depths, run_depth_experiment
    from ..serialization import atomic_write

    try:
        depths = parse_depths(args.depths)
        widths = tuple(int(v) for v in args.widths.split(","))
    except ValueError as e:
        raise UsageError(
            str(e) if "depths" in str(e) else f"--widths must be 3 integers like 8,16,32, got {args.widths!r}"
        ) from None
    if len(widths) != 3 or min(widths) < 1:
        raise UsageError(f"--widths must be 3 positive integers like 8,16,32, got {args.widths!r}")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(
                f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}"
            )
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    report = run_depth_experiment(
        args.data,
        depths,
        args.epochs,
        args.out,
        args.seed,
        args.batch_size,
        args.lr,
        widths,
        log=lambda m: print(m, file=sys.stderr),
    )
    for r in report["results"]:
        print(
            f"{r['family']:>8}-{r['depth']:<3} final train loss {r['final_train_loss']:.4f}  train acc "
            f"{100 * r['final_train_accuracy']:.2f}%  test acc {100 * r['test_accuracy']:.2f}%  "
            f"({r['seconds']:.0f} s)"
        )
    print(f"figure: {report['figure']}")
    path = os.path.join(args.out, "depth.json")
    atomic_write(path, lambda f: f.write(json.dumps(report, indent=1).encode()))
    if args.json:
        emit_json(
            {
                "results": [
                    {
                        k: r[k]
                        for k in (
                            "family",
                            "depth",
                            "final_train_loss",
                            "final_train_accuracy",
                            "test_accuracy",
                        )
                    }
                    for r in report["results"]
                ],
                "figure": report["figure"],
            }
        )
    return 0
