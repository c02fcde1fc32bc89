"""`convscope predict`: the top-k classes of image files (or, for segmentation models, a coloured
class mask and an overlay per file), preprocessed as in training."""

from __future__ import annotations

from .common import (
    UsageError,
    add_common,
    add_preprocessing_flags,
    check_out_dir,
    emit_json,
    load_image,
    preprocessing_flags,
)

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
        "--out",
        default="predictions",
        help="segmentation models: folder for NAME_mask.png and NAME_overlay.png (default: ./predictions)",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="use 1 - image: dark ink on light paper for a model trained on light on dark, or the reverse",
    )
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
    import sys

    from .. import schemas
    from ..train.inference import Predictor

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    predictor = Predictor(args.checkpoint, runtime=args.runtime, **preprocessing_flags(args))
    if predictor.task == "segment":
        check_out_dir(args.out)
        results = predictor.segment_files(args.images, args.out)
        for r in results:
            share = ", ".join(f"{name}: {n}" for name, n in r["pixels"].items())
            print(f"{r['image']}: {r['overlay_png']} (pixels per class: {share})")
        if args.json:
            emit_json(schemas.predictions(predictor.path, results))
        return 0
    images, warnings = [], []
    for path in args.images:  # every file is read (and checked) before anything is predicted
        image, _, _ = load_image(predictor, path, invert=args.invert)
        images.append(image)
        warning = None if args.invert else predictor.polarity_warning(image, path)
        if warning:
            warnings.append(warning)
            print(warning, file=sys.stderr)
    results = predictor.predict_images(images, list(args.images), args.top_k)
    for r in results:
        best = ", ".join(f"{t['label']} ({100 * t['probability']:.1f}%)" for t in r["top"])
        print(f"{r['image']}: {best}")
    if args.json:
        emit_json(schemas.predictions(predictor.path, results, warnings))
    return 0
