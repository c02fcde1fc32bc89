"""`convscope train`: train a registered CNN on a data set spec, with checkpoints and metrics."""

from __future__ import annotations

import argparse

from .common import UsageError, add_common, check_out_dir, emit_json, parse_hw, plural

# the only training flags that may come with --resume: the run's folder and a longer plan
RESUME_ALLOWED = {"out", "epochs"}

HELP = "train a CNN (default: the simple CNN on scikit-learn's digits, in well under a minute)"
DESCRIPTION = """Train a CNN from the model registry on a data set and save checkpoints.

Data specs: digits (embedded, the default), mnist:PATH (IDX files), cifar10:PATH / cifar100:PATH
(python batches), folder:PATH (one sub-folder per class), npz:PATH (x/y arrays). When a source has
one split, a stratified --test-split fraction is held out as the test set.
Segmentation (--task segment, e.g. --model unet): mnist-seg:PATH (canvases of MNIST digits from the
IDX files in PATH; mnist-seg:PATH?train=400&test=100 sets the counts), segfolder:PATH (images/ and
masks/ with matching names). Time series (--model fcn1d or resnet1d): ucr:NAME (a set aeon ships)
or ucr:PATH (NAME_TRAIN.ts / NAME_TEST.ts), z-normalised per series.

The run folder (--out, default runs/MODEL-DATA-TIME) gets last.npz (every epoch), best.npz,
history.csv/json and curve.png. Ctrl-C saves and exits. Settings can come from a TOML file
(--config); flags override it. Settings no flag gives may come from the model zoo's defaults for
the model on the data's input shape (e.g. lenet5 on 1x28x28); the run says which.

--resume --out DIR continues a run with its own saved settings; --epochs N with it extends the
plan to N epochs (the learning-rate schedule is recomputed); other training flags are refused."""


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
    p.add_argument("--epochs", type=int, help="number of epochs (default: the model's, else 15)")
    p.add_argument(
        "--batch-size", type=int, dest="batch_size", help="images per batch (default: the model's, else 32)"
    )
    p.add_argument(
        "--optimizer", choices=["sgd", "adam", "adamw"], help="default: the model's, else sgd with momentum"
    )
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: the model's for its optimizer, else 0.05 for sgd, 1e-3 for adam/adamw)",
    )
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-decay", type=float, dest="weight_decay", help="default: the model's, else 5e-4")
    p.add_argument("--scheduler", choices=["none", "step", "multistep", "cosine"], help="default: cosine")
    p.add_argument("--step-size", type=int, dest="step_size", help="StepLR period in epochs (default: 10)")
    p.add_argument("--gamma", type=float, help="StepLR/MultiStepLR decay factor (default: 0.1)")
    p.add_argument(
        "--milestones",
        type=milestones,
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
        help="on-the-fly augmentation (default: the model's for this input, else none)",
    )
    p.add_argument(
        "--crop-padding",
        type=int,
        dest="crop_padding",
        help="random-crop padding (default: the model's for this input, else 4)",
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        dest="label_smoothing",
        help="default: the model's for this input, else 0",
    )
    p.add_argument(
        "--task",
        choices=["auto", "classify", "segment"],
        help="classify (one label per input) or segment (one per pixel); default: follow the data",
    )
    p.add_argument(
        "--upsample", choices=["transposed", "bilinear"], help="U-Net upsampling (default: transposed)"
    )
    p.add_argument(
        "--ignore-index", type=int, dest="ignore_index", help="mask value of unlabeled pixels (default: 255)"
    )
    p.add_argument("--out", help="run folder (default: a new folder under ./runs/)")
    p.add_argument("--config", help="TOML file with settings (flags override it)")
    p.add_argument(
        "--resume",
        action="store_true",
        default=False,
        help="continue the run in --out from its last.npz with its own settings (same final weights "
        "as an uninterrupted run); only --epochs N may come with it, to extend the plan",
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


def milestones(text: str) -> list:
    """'5,8' -> [5, 8] for --milestones (the range check is TrainConfig.validate's)."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole epochs separated by commas, e.g. 5,8; got {text!r}"
        ) from None


def flag_names(parser) -> dict:
    """dest -> the flag as typed (``batch_size`` -> ``--batch-size``), read from the parser."""
    return {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}


def given_settings(args) -> dict:
    """The TrainConfig settings given as flags (the parser suppresses defaults, so only these)."""
    from ..train import TrainConfig

    return {k: v for k, v in vars(args).items() if k in TrainConfig.field_names()}


def check_resume_flags(args, flags: dict) -> None:
    """--resume continues the run's own plan: refuse every training setting but RESUME_ALLOWED
    (and --config), named as typed. Reads the settings from TrainConfig, so new ones are covered."""
    refused = sorted(set(given_settings(args)) - RESUME_ALLOWED)
    names = [flags.get(k, k) for k in refused] + (["--config"] if getattr(args, "config", None) else [])
    if names:
        raise UsageError(
            f"--resume continues the run with its own saved settings; {', '.join(names)} would change "
            f"{'them' if len(names) > 1 else 'one'} (only --epochs N may come with --resume, to extend "
            f"the plan); drop {'them' if len(names) > 1 else 'it'} or start a new run with another --out"
        )


def config_from_args(args):
    from ..train import ConfigError, TrainConfig, read_toml

    values = read_toml(args.config) if getattr(args, "config", None) else {}
    flags = given_settings(args)
    if "image_size" in flags and flags["image_size"] is not None:
        flags["image_size"] = list(parse_hw(flags["image_size"], "--image-size"))
    if isinstance(values.get("image_size"), (int, str)):
        values["image_size"] = list(parse_hw(str(values["image_size"]), "image_size"))
    values.update(flags)
    try:
        return TrainConfig.from_dict(values, "settings").validate()
    except ConfigError as e:
        if e.setting in flags:  # word it as the flag the user typed
            raise UsageError(e.worded(flag_names(args.usage_parser).get(e.setting, e.setting))) from None
        raise ValueError(f"config file {args.config}: {e}") from None


def run(args) -> int:
    if args.distributed:
        from ..distributed.launch import run_distributed

        return run_distributed(args, _run)
    if args.sync_bn:
        raise ValueError("--sync-bn needs --distributed (one process already sees the whole batch)")
    return _run(args, None)


def _run(args, distributed) -> int:
    import sys

    from .. import schemas
    from ..train import TrainConfig, Trainer, TrainingInterrupted

    out = getattr(args, "out", None)
    if out is not None:
        check_out_dir(out)
    progress = not args.no_progress
    if args.resume:
        if not out:
            raise UsageError("--resume needs --out DIR: the run folder to continue")
        check_resume_flags(args, flag_names(args.usage_parser))
        epochs = getattr(args, "epochs", None)
        if epochs is not None and epochs < 1:
            raise UsageError(f"--epochs must be a positive integer, got {epochs}")
        trainer = Trainer(TrainConfig(out=out), progress=progress, distributed=distributed)
    else:
        epochs = None
        trainer = Trainer(config_from_args(args), progress=progress, distributed=distributed)
    try:
        result = trainer.fit(resume=args.resume, epochs=epochs)
    except TrainingInterrupted as stop:
        if trainer.is_writer:
            print(f"convscope train: {stop}", file=sys.stderr)
            if args.json:
                emit_json(schemas.training(stop.result))
        return 130
    if not trainer.is_writer:
        return 0
    acc = result["test_accuracy"]
    best = result["best_accuracy"]
    if result.get("task") == "segment":
        print(
            f"final test mean IoU: {result['test_miou']:.4f} (best {best:.4f}), pixel accuracy "
            f"{100 * acc:.2f}% after {plural(result['epochs'], 'epoch')} in {result['seconds']:.1f} s"
        )
    else:
        print(
            f"final test accuracy: {100 * acc:.2f}% (best {100 * best:.2f}%) after "
            f"{plural(result['epochs'], 'epoch')} in {result['seconds']:.1f} s"
        )
    print(f"checkpoint: {result['checkpoint']} (last epoch: {result['last']})")
    if args.json:
        emit_json(schemas.training(result))
    return 0
