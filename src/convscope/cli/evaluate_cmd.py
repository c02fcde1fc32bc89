"""`convscope evaluate`: accuracy, per-class precision/recall and a confusion matrix for a checkpoint."""

from __future__ import annotations

import argparse
import os

from ..tables import format_table
from .common import add_common, check_out_dir, emit_json

HELP = "evaluate a checkpoint: accuracy, per-class precision/recall, confusion matrix (table + PNG)"


def add_parser(sub):
    p = sub.add_parser(
        "evaluate",
        help=HELP,
        description=HELP + ". The data is preprocessed exactly "
        "as in training; with the training spec the same hold-out is the test set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="a .npz checkpoint (or a run folder holding best.npz)")
    p.add_argument("--data", help="data set spec (default: the one the model was trained on)")
    p.add_argument("--split", choices=["test", "train", "all"], default="test", help="default: test")
    p.add_argument(
        "--out",
        help="folder for confusion_DATA_SPLIT.png and evaluation_DATA_SPLIT.json, DATA naming the "
        "data set (default: the checkpoint's folder)",
    )
    add_common(p)
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    import json
    import sys

    from .. import schemas
    from ..data import spec_slug
    from ..serialization import atomic_write
    from ..train.inference import Predictor
    from ..train.plots import plot_confusion

    if args.out is not None:
        check_out_dir(args.out)
    predictor = Predictor(args.checkpoint)
    if predictor.checkpoint is None:
        raise ValueError(f"evaluate needs a training checkpoint (.npz), got {args.checkpoint}")
    report = predictor.evaluate(args.data, args.split)
    if args.data is None:
        print(f"data: {report['data']} (the data set the model was trained on)", file=sys.stderr)
    out = args.out or os.path.dirname(os.path.abspath(predictor.path))
    check_out_dir(out)
    stem = f"{spec_slug(report['data'])}_{args.split}"  # one file per data set and split
    if predictor.task == "segment":
        return _segmentation(args, report, out, stem)
    png = os.path.join(out, f"confusion_{stem}.png")
    plot_confusion(
        report["confusion_matrix"],
        report["classes"],
        png,
        title=f"{predictor.checkpoint.model_name} on {report['data']} ({args.split})",
    )
    report_path = os.path.join(out, f"evaluation_{stem}.json")
    atomic_write(report_path, lambda f: f.write(json.dumps(report, indent=1).encode()))
    files = {"confusion_png": png, "report_json": report_path}
    if report["note"]:
        print(report["note"])
    rows = [
        (c["class"], f"{100 * c['precision']:.2f}%", f"{100 * c['recall']:.2f}%", c["support"])
        for c in report["per_class"]
    ]
    print(format_table(["class", "precision", "recall", "images"], rows))
    print()
    cm = report["confusion_matrix"]
    print(
        format_table(
            ["true \\ predicted"] + report["classes"],
            [[name] + row for name, row in zip(report["classes"], cm, strict=True)],
            title="confusion matrix (rows: true class, columns: predicted)",
        )
    )
    print()
    correct = sum(cm[i][i] for i in range(len(cm)))
    print(
        f"accuracy: {100 * report['accuracy']:.2f}% ({correct}/{report['count']}) on the {args.split} split"
    )
    print(f"confusion matrix: {png}")
    if args.json:
        emit_json(schemas.evaluation(report, files))
    return 0


def _segmentation(args, report, out, stem) -> int:
    """Print and save the per-class IoU, pixel accuracy and mean IoU of a segmentation model."""
    import json

    from .. import schemas
    from ..serialization import atomic_write

    report_path = os.path.join(out, f"evaluation_{stem}.json")
    atomic_write(report_path, lambda f: f.write(json.dumps(report, indent=1).encode()))
    report["report_json"] = report_path
    if report["note"]:
        print(report["note"])
    rows = [
        (name, "absent" if iou is None else f"{iou:.4f}")
        for name, iou in zip(report["classes"], report["iou"], strict=True)
    ]
    print(format_table(["class", "IoU"], rows))
    print()
    print(
        f"mean IoU: {report['miou']:.4f}, pixel accuracy: {100 * report['pixel_accuracy']:.2f}% "
        f"({report['pixels']} labelled pixels of {report['count']} images) on the {args.split} split"
    )
    if args.json:
        emit_json(schemas.evaluation(report, {"report_json": report_path}))
    return 0
