"""`convscope train`: train a registered CNN on a data set spec, with checkpoints and metrics."""

from __future__ import annotations

import argparse

from .common import add_common, emit_json, parse_hw

HELP = "train a CNN (default: the simple CNN on scikit-learn's digits, in well under a minute)"
DESCRIPTION = """Train a CNN from the model registry on a data set and save checkpoints.

Data specs: digits (embedded, the default), mnist:PATH (IDX files), cifar10:PATH / cifar100:PATH
(python batches), folder:PATH (one sub-folder per class), npz:PATH (x/y arrays). When a source has
one split, a stratified --test-split fraction is held out as the test set.

The run folder (--out, default runs/MODEL-DATA-TIME) gets last.npz (every epoch; --resume
continues from it exactly), best.npz, history.csv/json and curve.png. Ctrl-C saves and exits.
Settings can come from a TOML file (--config); flags override it."""


def add_parser(sub):
    p = sub.add_parser(
        "train",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--data", help="data set spec (default: digits)")
    p.add_argument(
        "--model",
        help="model name from the registry (default: simple; see `convscope summary --list`) or an "
        ".onnx file to fine-tune (its classifier must fit the data's classes)",
    )
    p.add_argument("--epochs", type=int, help="number of epochs (default: 15)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="images per batch (default: 32)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="default: sgd with momentum")
    p.add_argument("--lr", type=float, help="learning rate (default: 0.05 for sgd, 0.001 for adam/adamw)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-decay", type=float, dest="weight_decay", help="default: 5e-4")
    p.add_argument("--scheduler", choices=["none", "step", "multistep", "cosine"], help="default: cosine")
    p.add_argument("--step-size", type=int, dest="step_size", help="StepLR period in epochs (default: 10)")
    p.add_argument("--gamma", type=float, help="StepLR/MultiStepLR decay factor (default: 0.1)")
    p.add_argument(
        "--milestones",
        type=lambda s: [int(v) for v in s.split(",")],
        help="MultiStepLR epochs, comma-separated (default: 50%%,75%% of the epochs)",
    )
    p.add_argument(
        "--seed", type=int, help="seed for initialisation, shuffling and the hold-out (default: 0)"
    )
    p.add_argument(
        "--test-split",
        type=float,
        dest="test_split",
        help="fraction held out when the data has one split (default: 0.2)",
    )
    p.add_argument("--image-size", dest="image_size", help="resize images to HxW, e.g. 32 or 32x32")
    p.add_argument("--mode", choices=["auto", "gray", "rgb"], help="image channels (default: auto)")
    p.add_argument(
        "--augment",
        choices=["none", "flip", "crop", "crop+flip"],
        help="on-the-fly augmentation (default: none)",
    )
    p.add_argument("--crop-padding", type=int, dest="crop_padding", help="random-crop padding (default: 4)")
    p.add_argument("--label-smoothing", type=float, dest="label_smoothing", help="default: 0")
    p.add_argument("--out", help="run folder (default: a new folder under ./runs/)")
    p.add_argument("--config", help="TOML file with settings (flags override it)")
    p.add_argument(
        "--resume",
        action="store_true",
        default=False,
        help="continue the run in --out from its last.npz (same seed: same final weights)",
    )
    p.add_argument("--weights", help="initialise the model from this weights file (any format; fine-tuning)")
    p.add_argument("--freeze", help="glob of parameter names to freeze, e.g. 'features.*' or 'layer[1-3].*'")
    p.add_argument("--init", choices=["default", "gaussian"], help="default: each layer's own initialisation")
    p.add_argument("--init-std", type=float, dest="init_std", help="--init gaussian: the std (default 0.01)")
    p.add_argument(
        "--no-progress", action="store_true", default=False, dest="no_progress", help="no progress bars"
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        default=False,
        help="data-parallel over MPI: run as `mpiexec -n N convscope train --distributed ...`; "
        "--batch-size is per process",
    )
    p.add_argument(
        "--sync-bn",
        action="store_true",
        default=False,
        dest="sync_bn",
        help="with --distributed: batch-norm statistics over all processes' shards",
    )
    add_common(p)
    p.set_defaults(handler=run, json=False, debug=False)
    return p


def config_from_args(args):
    from ..train import TrainConfig, read_toml

    values = read_toml(args.config) if getattr(args, "config", None) else {}
    flags = {k: v for k, v in vars(args).items() if k in TrainConfig.field_names()}
    if "image_size" in flags and flags["image_size"] is not None:
        flags["image_size"] = list(parse_hw(flags["image_size"], "--image-size"))
    if isinstance(values.get("image_size"), (int, str)):
        values["image_size"] = list(parse_hw(str(values["image_size"]), "image_size"))
    values.update(flags)
    return TrainConfig.from_dict(values, "settings")


def run(args) -> int:
    if args.distributed:
        from ..distributed.launch import run_distributed

        return run_distributed(args, _run)
    if args.sync_bn:
        raise ValueError("--sync-bn needs --distributed (one process already sees the whole batch)")
    return _run(args, None)


def _run(args, distributed) -> int:
    import sys

    from ..train import Trainer, TrainingInterrupted

    config = config_from_args(args)
    if args.resume and not config.out:
        raise ValueError("--resume needs --out DIR: the run folder to continue")
    trainer = Trainer(config, progress=not args.no_progress, distributed=distributed)
    try:
        result = trainer.fit(resume=args.resume)
    except TrainingInterrupted as stop:
        if trainer.is_writer:
            print(f"convscope train: {stop}", file=sys.stderr)
            if args.json:
                emit_json({k: v for k, v in stop.result.items() if k != "history"})
        return 130
    if not trainer.is_writer:
        return 0
    acc = result["test_accuracy"]
    best = result["best_accuracy"]
    print(
        f"final test accuracy: {100 * acc:.2f}% (best {100 * best:.2f}%) after {result['epochs']} "
        f"epochs in {result['seconds']:.1f} s"
    )
    print(f"checkpoint: {result['checkpoint']} (last epoch: {result['last']})")
    if args.json:
        emit_json({k: v for k, v in result.items() if k != "history"})
    return 0
