"""`convscope explain`: show the arithmetic of a convolution, feature maps, filters and heatmaps.

Sub-subcommands: ``conv`` (one value or all values of a convolution as inner products plus a
bias: the CS231n demo, a seeded random example, numbers from a file, or a value inside a
trained model with its receptive field), ``features`` (feature-map grids and first-layer
filters) and ``heatmap`` (Grad-CAM and friends, when its module is installed).
"""

from __future__ import annotations

import os

from .. import schemas
from . import explain_heatmap, explain_scoremap
from .common import UsageError, add_common, check_out_dir, check_out_file, emit_json, load_image, parse_hw

HELP = "explain what a CNN computes: conv arithmetic, feature maps, filters, heatmaps"
CONV_HELP = "show each output value of a convolution as inner products over channels plus a bias"
FEATURES_HELP = "write feature-map grids of a trained model's layers and its first-layer filters"


def add_parser(sub):
    p = sub.add_parser("explain", help=HELP, description=HELP + ".")
    esub = p.add_subparsers(dest="explain_command", metavar="WHAT")
    esub.required = True
    c = esub.add_parser(
        "conv",
        help=CONV_HELP,
        description=CONV_HELP + ". Without a checkpoint: "
        "the CS231n demo (5x5x3 input, pad 1, stride 2, two 3x3x3 filters), --random "
        "SEED or --input FILE. With a checkpoint: --image, --layer and --at pick a value "
        "of a conv layer; its receptive field in the image is reported too.",
    )
    c.add_argument("checkpoint", nargs="?", help="a trained .npz checkpoint (optional)")
    c.add_argument(
        "--input",
        help="JSON or NPZ with input (C,H,W), weight (C_out,C_in,KH,KW), bias, "
        "stride, padding; or a .npy input volume (C,H,W) with --weights",
    )
    c.add_argument("--weights", help="with a .npy --input: a .npy of filters (C_out,C_in,KH,KW)")
    c.add_argument("--bias", help="with a .npy --input: a .npy of biases (C_out,)")
    c.add_argument("--random", type=int, metavar="SEED", help="a seeded random example of small integers")
    c.add_argument("--c-in", type=int, default=3, dest="c_in", help="--random: input channels (default 3)")
    c.add_argument("--size", default="5", help="--random: input HxW or one number (default 5)")
    c.add_argument("--c-out", type=int, default=2, dest="c_out", help="--random: filters (default 2)")
    c.add_argument("--kernel", default="3", help="--random: KHxKW or one number (default 3)")
    c.add_argument("--stride", help="stride, e.g. 2 or 2x1 (default: 1; the demo and files bring their own)")
    c.add_argument("--padding", help="padding: 1, 1x2, same or valid (default: 0; the demo uses 1)")
    c.add_argument("--dilation", help="dilation, e.g. 2 (default 1)")
    c.add_argument("--at", help="explain only output value o,y,x (channel, row, column)")
    c.add_argument(
        "--max-positions",
        type=int,
        default=50,
        dest="max_positions",
        help="print at most this many values (default 50; the JSON has all)",
    )
    c.add_argument("--image", help="with a checkpoint: the image file")
    c.add_argument("--layer", help="with a checkpoint: the conv layer's dotted name, e.g. features.conv2")
    c.add_argument("--out", help="with a checkpoint: write a PNG of the image with the receptive field")
    add_common(c)
    c.set_defaults(handler=run_conv)
    f = esub.add_parser(
        "features",
        help=FEATURES_HELP,
        description=FEATURES_HELP + ". One PNG grid per "
        "layer (default: every conv layer) plus filters_<first conv>.png.",
    )
    f.add_argument("checkpoint", help="a trained .npz checkpoint (or a run folder holding best.npz)")
    f.add_argument("--image", required=True, help="the image file (PNG, JPEG, ...)")
    f.add_argument("--layers", help="comma-separated layer names (default: every Conv2d)")
    f.add_argument("--out", default="explanations", help="folder for the PNGs (default: ./explanations)")
    f.add_argument(
        "--per-tile-scale",
        action="store_true",
        dest="per_tile_scale",
        help="scale each feature map to its own min..max (default: one shared scale)",
    )
    add_common(f)
    f.set_defaults(handler=run_features)
    explain_heatmap.add_parser(esub)
    explain_scoremap.add_parser(esub)
    return p


def parse_at(text) -> tuple:
    """'1,2,2' -> (1, 2, 2), or a UsageError."""
    parts = str(text).replace(" ", "").split(",")
    try:
        at = tuple(int(v) for v in parts)
    except ValueError:
        at = ()
    if len(at) != 3 or min(at) < 0:
        raise UsageError(
            f"--at must be three non-negative integers o,y,x (channel, row, column), e.g. 1,2,2; got {text!r}"
        )
    return at


def _pair(text, name):
    return None if text is None else parse_hw(text, name)


def _padding(text):
    if text is None or text in ("same", "valid"):
        return text
    parts = str(text).lower().replace("x", ",").split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < 0:
        raise UsageError(f"--padding must be a number, HxW, 'same' or 'valid', e.g. 1 or 1x2; got {text!r}")
    return values[0] if len(values) == 1 else values


def run_conv(args) -> int:
    from ..explain import conv_trace, demo_example, format_trace, load_trace_inputs, random_example

    at = parse_at(args.at) if args.at is not None else None
    if args.checkpoint:
        return _run_model_conv(args, at)
    if args.image or args.layer or args.out:
        raise UsageError(
            "--image, --layer and --out need a checkpoint: convscope explain conv CKPT "
            "--image IMG --layer NAME --at o,y,x"
        )
    if args.input and args.random is not None:
        raise UsageError("give either --input FILE or --random SEED, not both")
    stride, padding = _pair(args.stride, "--stride"), _padding(args.padding)
    dilation = _pair(args.dilation, "--dilation")
    if args.input:
        example, label = load_trace_inputs(args.input, args.weights, args.bias), f"numbers from {args.input}"
    elif args.random is not None:
        h, w = parse_hw(args.size, "--size")
        example = random_example(
            args.random,
            args.c_in,
            h,
            w,
            args.c_out,
            parse_hw(args.kernel, "--kernel"),
            stride or 1,
            padding or 0,
            dilation or 1,
        )
        label = f"random example (seed {args.random})"
    else:
        example, label = demo_example(), "the CS231n demo"
    for key, value in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if value is not None:
            example[key] = value
    trace = conv_trace(**example, at=at)
    print(f"convolution of {label}")
    print(format_trace(trace, max_positions=args.max_positions), end="")
    if args.json:
        emit_json(schemas.trace(trace))
    return 0


def _run_model_conv(args, at) -> int:
    from ..explain.model_trace import conv_layer_names, find_conv_layer, format_model_trace, trace_model_value
    from ..train.inference import Predictor

    if args.input or args.random is not None:
        raise UsageError("--input/--random trace a standalone convolution; drop the checkpoint or them")
    if args.out:
        check_out_file(args.out)
    predictor = Predictor(args.checkpoint)
    if not args.image or not args.layer or at is None:
        names = ", ".join(conv_layer_names(predictor.model))
        raise UsageError(
            f"with a checkpoint, give --image IMG, --layer NAME and --at o,y,x (conv layers: {names})"
        )
    find_conv_layer(predictor.model, args.layer)  # a wrong name fails before any image work
    image, x, _ = load_image(predictor, args.image)
    result = trace_model_value(predictor.model, x, args.layer, at)
    result.update(checkpoint=predictor.path, image=args.image)
    print(format_model_trace(result), end="")
    if args.out and result["receptive_field"] is not None:
        from ..explain.figures import receptive_field_figure, save_figure

        o, y, xx = result["at"]
        title = (
            f"{os.path.basename(args.image)} as the model sees it ({image.shape[2]}x{image.shape[3]}): "
            f"what {args.layer} out[{o}, {y}, {xx}] sees"
        )
        fig = receptive_field_figure(image[0], result["receptive_field"], title)
        result["figure"] = save_figure(fig, args.out)
        print(f"wrote {result['figure']}")
    if args.json:
        emit_json(schemas.trace(result))
    return 0


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def run_features(args) -> int:
    from ..explain import feature_map_grid, features_for_layers, filter_grid
    from ..explain.model_trace import conv_layer_names
    from ..train.inference import Predictor

    check_out_dir(args.out)
    predictor = Predictor(args.checkpoint)
    model = predictor.model
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    if args.layers is not None and not layers:
        raise UsageError(f"--layers must name at least one layer, got {args.layers!r}")
    image, x, _ = load_image(predictor, args.image)
    acts = features_for_layers(model, x, layers)
    modules = dict(model.named_modules())
    scale = "own scale per tile" if args.per_tile_scale else "shared colour scale"
    files = {}
    for name, act in acts.items():
        path = os.path.join(args.out, f"features_{_safe(name)}.png")
        title = (
            f"Feature maps of layer {name} ({type(modules[name]).__name__}) for "
            f"{os.path.basename(args.image)} ({scale})"
        )
        files[name] = feature_map_grid(act, path, title, shared_scale=not args.per_tile_scale)
        print(files[name])
    convs = conv_layer_names(model)
    if convs:
        first = convs[0]
        path = os.path.join(args.out, f"filters_{_safe(first)}.png")
        files[f"filters:{first}"] = filter_grid(
            modules[first].weight.data, path, f"Learned filters of the first conv layer {first}"
        )
        print(files[f"filters:{first}"])
    if args.json:
        emit_json(schemas.features(predictor.path, args.image, files))
    return 0
