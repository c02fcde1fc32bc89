"""Pre-train on half of the digits' classes, fine-tune on the other half, compare initialisations.

Digits 0-4 pre-train the 'simple' CNN; digits 5-9 (relabelled 0-4) are then learnt for 1 and
3 epochs from four starts: the pre-trained weights, the pre-trained weights with the
convolutional features frozen, the default initialisation ("scratch") and the lecture's plain
Gaussian N(0, 0.01²), once with all ~145 training images per class and once with only 10.
Each number is the test accuracy on digits 5-9 (a fixed stratified hold-out of 20%),
averaged over seeds 0, 1 and 2. Run: python examples/finetune_digits.py
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from convscope.data.sources import load_digits
from convscope.train import TrainConfig, Trainer

SEEDS = (0, 1, 2)
PRETRAIN_EPOCHS = 10


def write_half(folder: str, digits: range, name: str, per_class: int | None = None) -> str:
    """An .npz with a fixed stratified 80/20 split of the given digit classes, relabelled 0..k-1
    (at most ``per_class`` training images per class; the test images are always the same)."""
    data = load_digits()
    x_train, y_train, x_test, y_test = [], [], [], []
    rng = np.random.default_rng(0)
    for label, digit in enumerate(digits):
        idx = rng.permutation(np.flatnonzero(data.y == digit))
        cut = int(round(0.8 * len(idx)))
        keep = cut if per_class is None else min(per_class, cut)
        x_train.append(data.x[idx[:keep]]), x_test.append(data.x[idx[cut:]])
        y_train += [label] * keep
        y_test += [label] * (len(idx) - cut)
    path = os.path.join(folder, f"{name}.npz")
    np.savez(
        path,
        x_train=np.concatenate(x_train),
        y_train=np.array(y_train),
        x_test=np.concatenate(x_test),
        y_test=np.array(y_test),
        classes=np.array([str(d) for d in digits]),
    )
    return path


def run(folder: str, data: str, epochs: int, seed: int, tag: str, **init) -> float:
    config = TrainConfig(
        data=f"npz:{data}", model="simple", epochs=epochs, seed=seed, out=os.path.join(folder, tag), **init
    )
    result = Trainer(config, progress=False, log=lambda msg: None).fit()
    return float(result["test_accuracy"])


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        first = write_half(folder, range(0, 5), "digits0-4")
        seconds = {
            "all": write_half(folder, range(5, 10), "digits5-9"),
            "10/class": write_half(folder, range(5, 10), "digits5-9-small", per_class=10),
        }
        starts = {
            "pre-trained on 0-4": {},
            "pre-trained, features frozen": {"freeze": "features.*"},
            "scratch (default init)": {},
            "Gaussian N(0, 0.01^2)": {"init": "gaussian", "init_std": 0.01},
        }
        table = {(name, size): {1: [], 3: []} for size in seconds for name in starts}
        pre_acc = []
        for seed in SEEDS:
            pre_acc.append(run(folder, first, PRETRAIN_EPOCHS, seed, f"pre-{seed}"))
            weights = os.path.join(folder, f"pre-{seed}", "best.npz")
            for name, init in starts.items():
                if name.startswith("pre-trained"):
                    init = dict(init, weights=weights)
                for size, second in seconds.items():
                    for epochs in (1, 3):
                        tag = f"{name.split()[0]}-{len(init)}-{epochs}-{seed}-{size.replace('/', '')}"
                        table[name, size][epochs].append(run(folder, second, epochs, seed, tag, **init))
    print(
        f"pre-training on digits 0-4 ({PRETRAIN_EPOCHS} epochs): {100 * np.mean(pre_acc):.1f}% test accuracy"
    )
    print("| fine-tuning on digits 5-9 from | train images | 1 epoch | 3 epochs |")
    print("|---|---|---|---|")
    for (name, size), row in table.items():
        print(f"| {name} | {size} | {100 * np.mean(row[1]):.1f}% | {100 * np.mean(row[3]):.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
