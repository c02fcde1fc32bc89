"""`convscope predict`: the top-k classes of image files, preprocessed as in training."""

from __future__ import annotations

from .common import add_common, add_preprocessing_flags, emit_json, preprocessing_flags

HELP = "predict the classes of image files with a trained checkpoint (top-k with probabilities)"


def add_parser(sub):
    p = sub.add_parser(
        "predict",
        help=HELP,
        description=HELP + ". Images of any size or mode are "
        "converted with the training preprocessing (channels, size, normalisation).",
    )
    p.add_argument("checkpoint", help="a .npz checkpoint (or a run folder holding best.npz) or a .onnx file")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top-k", type=int, default=3, dest="top_k", help="how many classes to show (default: 3)")
    p.add_argument(
        "--runtime",
        choices=("convscope", "onnxruntime"),
        default="convscope",
        help="run an .onnx file on convscope's engine (default) or with onnxruntime",
    )
    add_preprocessing_flags(p)
    add_common(p)
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    from ..train.inference import Predictor

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    predictor = Predictor(args.checkpoint, runtime=args.runtime, **preprocessing_flags(args))
    results = predictor.predict_files(args.images, args.top_k)
    for r in results:
        best = ", ".join(f"{t['class']} ({100 * t['probability']:.1f}%)" for t in r["top"])
        print(f"{r['image']}: {best}")
    if args.json:
        emit_json({"checkpoint": predictor.path, "predictions": results})
    return 0
