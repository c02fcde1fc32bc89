"""Train fcn1d (or resnet1d) on UCR/UEA sets and print accuracy and time beside published figures.

The model's training defaults apply (Adam, lr 1e-3, batch 16, 150 epochs; zoo metadata), as
for `convscope train --model fcn1d --data ucr:NAME`.

Usage:
    python benchmarks/bench_ucr.py [--root FOLDER] [--sets GunPoint,ItalyPowerDemand] [--epochs 150]
        [--pad edge]

FOLDER holds one sub-folder per set with NAME_TRAIN.ts / NAME_TEST.ts (default: the data folder
of an installed aeon). Wall-clock seconds and the process's CPU seconds are both reported:
on a shared machine the wall clock depends on the other load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from convscope.data.ucr import AEON_CLASSIFICATION_SETS, aeon_data_folder
from convscope.train import TrainConfig, Trainer

# Fawaz et al. 2019 (dl-4-tsc), FCN mean test accuracy over 5 runs (UCR 2018 archive)
PUBLISHED_FCN = {"GunPoint": 1.000, "ItalyPowerDemand": 0.963}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None)
    p.add_argument("--sets", default=",".join(AEON_CLASSIFICATION_SETS))
    p.add_argument("--model", default="fcn1d")
    p.add_argument("--epochs", type=int, default=None, help="default: the model's (150)")
    p.add_argument("--pad", choices=["edge", "zero"], default="zero", help="padding of shorter series")
    args = p.parse_args(argv)
    root = args.root or aeon_data_folder()
    if root is None:
        print("no --root and aeon is not installed", file=sys.stderr)
        return 1
    rows = []
    for name in args.sets.split(","):
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(
                data=f"ucr:{os.path.join(root, name)}?pad={args.pad}",
                model=args.model,
                epochs=args.epochs,
                out=os.path.join(out, "run"),
            )
            wall, cpu = time.perf_counter(), time.process_time()
            result = Trainer(config, progress=False, log=lambda m: None).fit()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        row = {
            "set": name,
            "model": args.model,
            "epochs": result.get("epochs", args.epochs),
            "pad": args.pad,
            "test_accuracy": round(result["test_accuracy"], 4),
            "best_accuracy": round(result["best_accuracy"], 4),
            "published_fcn": PUBLISHED_FCN.get(name),
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
