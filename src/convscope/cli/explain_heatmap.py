"""`convscope explain heatmap`: where in an image a trained CNN found the evidence for a class."""

from __future__ import annotations

import os
import sys

from .common import (
    UsageError,
    add_common,
    add_preprocessing_flags,
    check_out_dir,
    emit_json,
    load_image,
    preprocessing_flags,
)

HELP = "draw a Grad-CAM, Grad-CAM++ or saliency heatmap of one image for a trained checkpoint"
DESCRIPTION = (
    HELP
    + """.

The image is preprocessed as in training (channels, size, normalisation). Grad-CAM
(Selvaraju et al. 2017) weights the target layer's feature maps by the mean gradient of the
class score; Grad-CAM++ (Chattopadhay et al. 2018) uses higher-order weights; saliency
(Simonyan et al. 2014) is max over channels of |d score / d pixel|. The PNG shows the input,
the heatmap and their overlay; --box outlines the receptive field of the strongest cell.
For 1-D models (fcn1d, resnet1d) give --data ucr:NAME --index I instead of --image: the test
series I is drawn coloured by its class activation map (Grad-CAM over (N, C, L) maps)."""
)


def add_parser(sub):
    """Register ``heatmap`` on the ``explain`` command's sub-subparsers ``sub``."""
    import argparse

    p = sub.add_parser(
        "heatmap", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoint", help="a .npz checkpoint (or a run folder holding best.npz) or a .onnx file")
    add_preprocessing_flags(p)
    p.add_argument("--image", help="the image file to explain (PNG, JPEG, ...)")
    p.add_argument("--data", help="a series data set (ucr:NAME or ucr:PATH) for 1-D models, with --index")
    p.add_argument("--index", type=int, default=0, help="which test series of --data (default: 0)")
    p.add_argument(
        "--class",
        dest="class_",
        metavar="K",
        help="class to explain, as an index or a class name (default: the predicted class)",
    )
    p.add_argument(
        "--method", choices=["gradcam", "gradcam++", "saliency"], default="gradcam", help="default: gradcam"
    )
    p.add_argument(
        "--layer",
        help="dotted name of the target layer (default: the model's Grad-CAM "
        "layer from the registry, else the last conv layer larger than 1x1)",
    )
    p.add_argument(
        "--box",
        action="store_true",
        help="outline the receptive field of the strongest cell of the target layer",
    )
    p.add_argument("--out", default="explanations", help="folder for the PNG (default: ./explanations)")
    add_common(p)
    p.set_defaults(handler=run)
    return p


def _class_index(text, classes) -> int | None:
    if text is None:
        return None
    n = len(classes)
    try:
        k = int(text)
    except ValueError:
        names = [str(c) for c in classes]
        if text in names:
            return names.index(text)
        raise UsageError(
            f"--class {text!r} is neither an index in 0..{n - 1} nor a class name "
            f"({', '.join(names[:20])}{' ...' if n > 20 else ''})"
        ) from None
    if not 0 <= k < n:
        raise UsageError(
            f"--class {k} is out of range: the model has {n} classes, valid indices are 0..{n - 1}"
        )
    return k


def run(args) -> int:
    from .. import schemas
    from ..explain.gradcam import explain_heatmap, resolve_layer, strongest_cell
    from ..explain.overlay import save_heatmap_overlay
    from ..train.inference import Predictor

    if (args.image is None) == (args.data is None):
        raise UsageError("give either --image (an image model) or --data with --index (a 1-D model)")
    check_out_dir(args.out)
    predictor = Predictor(args.checkpoint, **preprocessing_flags(args))
    class_idx = _class_index(args.class_, predictor.classes)
    if args.data is not None:
        return run_series(args, predictor, class_idx)
    if args.box and args.method == "saliency":
        raise UsageError("--box needs a target layer; it is not available with --method saliency")
    if args.layer is not None and args.method == "saliency":
        raise UsageError("--layer applies to gradcam and gradcam++; saliency uses the input gradient")
    image01, x, original = load_image(predictor, args.image)  # (1, C, H, W) in [0, 1], input, (H, W)
    c, h, w = image01.shape[1:]
    model = predictor.model
    layer = None
    if args.method != "saliency":
        try:
            layer, _ = resolve_layer(model, x, args.layer)
        except ValueError as e:
            raise UsageError(f"--layer: {e}" if args.layer is not None else str(e)) from None
    result = explain_heatmap(model, x, args.method, layer, class_idx)
    empty = not result["heatmap"].any()
    if empty:
        print(
            f"note: the heatmap is all zero: no positive evidence for class {result['class_idx']}"
            + (f" at layer {layer} (try the activation after it, or --method gradcam++)" if layer else ""),
            file=sys.stderr,
        )
    box = None
    if args.box and not empty:
        box = strongest_cell(model, x, layer, result["class_idx"], args.method, result=result)

    classes = [str(k) for k in predictor.classes]
    k, pred = result["class_idx"], result["predicted"]
    probs = result["probabilities"]
    title = (
        f"{args.method}"
        + (f" | layer {layer}" if layer else "")
        + f" | predicted {classes[pred]} ({100 * probs[pred]:.1f}%)"
    )
    if k != pred:
        title += f" | explaining {classes[k]} ({100 * probs[k]:.1f}%)"
    stem = os.path.splitext(os.path.basename(args.image))[0]
    path = os.path.join(args.out, f"heatmap_{args.method}_{stem}.png")
    display = image01[0].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    display = display[:, :, 0] if c == 1 else display
    save_heatmap_overlay(display, result["heatmap"], path, title, box["box"] if box else None)

    print(path)
    print(f"predicted: {classes[pred]} ({100 * probs[pred]:.1f}%)")
    if k != pred:
        print(f"explained class: {classes[k]} ({100 * probs[k]:.1f}%)")
    print(f"layer: {layer if layer else 'input (saliency)'}")
    if box:
        y0, x0, y1, x1 = box["box"]
        print(f"strongest cell {box['cell']} of {layer}: receptive field rows {y0}-{y1}, columns {x0}-{x1}")
    if args.json:
        emit_json(
            schemas.heatmap(
                {
                    "checkpoint": predictor.path,
                    "image": str(args.image),
                    "png": path,
                    "method": args.method,
                    "layer": layer,
                    "class_index": k,
                    "class": classes[k],
                    "probability": float(probs[k]),
                    "score": result["score"],
                    "predicted_index": pred,
                    "predicted": classes[pred],
                    "predicted_probability": float(probs[pred]),
                    "resized_from": None if original == (h, w) else list(original),
                    "input_size": [c, h, w],
                    "strongest_cell": box,
                }
            )
        )
    return 0


def run_series(args, predictor, class_idx) -> int:
    """The 1-D class activation map of test series ``--index`` of ``--data``."""
    from .. import schemas
    from ..data import load_dataset
    from ..explain.cam1d import cam_1d, save_cam_1d

    if len(predictor.input_shape) != 2:
        raise UsageError(f"--data explains 1-D models; this checkpoint takes {predictor.input_shape} images")
    if args.method != "gradcam" or args.box:
        raise UsageError("1-D series support --method gradcam (the class activation map) only, without --box")
    test = load_dataset(args.data).test
    if test.x.ndim != 3 or test.x.shape[1] != predictor.input_shape[0]:
        raise UsageError(
            f"--data {args.data} has inputs of shape {test.x.shape[1:]}; the model takes "
            f"{predictor.input_shape[0]} channel(s) of series"
        )
    if not 0 <= args.index < len(test):
        raise UsageError(f"--index {args.index} is out of range: the test split has {len(test)} series")
    series = test.x[args.index : args.index + 1]
    result = cam_1d(predictor.model, series, args.layer, class_idx)
    classes = [str(k) for k in predictor.classes]
    k, pred, probs = result["class_idx"], result["predicted"], result["probabilities"]
    truth = classes[int(test.y[args.index])]
    title = (
        f"CAM | layer {result['layer']} | series {args.index} (label {truth}) | predicted {classes[pred]} "
        f"({100 * probs[pred]:.1f}%)" + (f" | explaining {classes[k]}" if k != pred else "")
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"cam1d_{test.name}_{args.index}.png")
    save_cam_1d(series[0], result["cam"], path, title)
    print(path)
    print(f"predicted: {classes[pred]} ({100 * probs[pred]:.1f}%), label {truth}")
    if args.json:
        emit_json(
            schemas.heatmap(
                {
                    "checkpoint": predictor.checkpoint.path,
                    "data": args.data,
                    "index": args.index,
                    "png": path,
                    "layer": result["layer"],
                    "class_index": k,
                    "class": classes[k],
                    "label": truth,
                    "predicted": classes[pred],
                    "predicted_probability": float(probs[pred]),
                    "cam": result["cam"],
                }
            )
        )
    return 0
