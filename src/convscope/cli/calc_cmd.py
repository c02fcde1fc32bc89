"""`convscope calc`: the lecture's hand calculations, every formula shown with its numbers filled in."""

from __future__ import annotations

import argparse
import sys

from .common import UsageError, add_common, emit_json

HELP = "hand calculations: conv/pool output sizes, parameters, MACs, receptive fields of conv stacks"
DESCRIPTION = """The lecture's hand calculations, each formula shown with its numbers filled in.

  convscope calc conv --input 3x32x32 --filters 10 --kernel 5 --stride 1 --padding 2
  convscope calc conv --hwc 32x32x3 --filters 10 --kernel 5 --padding 2     (the lecture's order)
  convscope calc pool --width 224 --height 224 --depth 64 --kernel 2 --stride 2
  convscope calc stack 3x3,3x3,3x3 --vs 7x7 --channels 64

--input is C x H x W (3x32x32), PyTorch's order, as in `convscope summary`; HxW means one channel.
The lecture's W x H x D notation: --hwc HxWxC, or --width/--height/--depth. Sizes are 5 or HxW (5x3).
All window arithmetic comes from convscope.kernels.geometry, the module the layers use."""

CONV = """Output size (W - F + 2P)/S + 1, parameters (F*F*C + 1)*K, MACs and output volume of one conv
layer. When (W - F + 2P) is not a multiple of S, it says how many input rows/columns floor() drops
and lists the nearest input sizes, paddings and strides that fit exactly (AlexNet: 227, not 224)."""

POOL = """Output size of a max/average pool, its 0 parameters, the depth (unchanged: pooling works per
channel), the fraction of activations kept (2x2/2 keeps 25%) and the effect of --ceil-mode."""

STACK = """Receptive field after each layer of a stack (3x3,3x3,3x3 -> 3, 5, 7) versus another stack or
single layer (--vs 7x7), with parameters (27C^2 vs 49C^2, biases excluded), non-linearities and
MACs per output position. Every conv maps C to C channels. Layer specs: 3x3, 5x5, 1x1, 3x3/2
(stride 2), pool2x2/2 (pooling: receptive field only, no parameters)."""


def add_parser(sub):
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("calc", help=HELP, description=DESCRIPTION, formatter_class=fmt)
    what = p.add_subparsers(dest="calc_command", metavar="{conv,pool,stack}")
    what.required = True
    conv = what.add_parser(
        "conv", help="one conv layer: output size, parameters, MACs", description=CONV, formatter_class=fmt
    )
    _add_volume(conv, "3x32x32")
    conv.add_argument(
        "--filters", required=True, type=int, metavar="K", help="number of filters (output depth)"
    )
    conv.add_argument("--kernel", required=True, metavar="F", help="kernel size: 5 or 5x3 (height x width)")
    conv.add_argument("--stride", default="1", metavar="S", help="stride: 2 or 2x1 (default: 1)")
    conv.add_argument(
        "--padding",
        default="0",
        metavar="P",
        help="zeros on each side: 2, 2x1, 'same' (any stride) or 'valid' (default: 0)",
    )
    conv.add_argument("--dilation", default="1", metavar="D", help="spacing of kernel taps (default: 1)")
    conv.add_argument("--groups", type=int, default=1, help="each filter sees C/groups channels (default: 1)")
    conv.add_argument("--no-bias", action="store_false", dest="bias", help="no bias per filter")
    pool = what.add_parser(
        "pool",
        help="one pooling layer: output size, fraction kept, ceil_mode",
        description=POOL,
        formatter_class=fmt,
    )
    _add_volume(pool, "64x224x224")
    pool.add_argument("--kernel", default="2", metavar="F", help="window size: 2 or 3x2 (default: 2)")
    pool.add_argument("--stride", metavar="S", help="stride (default: the kernel size)")
    pool.add_argument("--padding", default="0", metavar="P", help="zeros on each side (default: 0)")
    pool.add_argument("--dilation", default="1", metavar="D", help="spacing of window taps (default: 1)")
    pool.add_argument(
        "--ceil-mode",
        action="store_true",
        dest="ceil_mode",
        help="round the output size up, keeping a partial last window (PyTorch's ceil_mode)",
    )
    pool.add_argument("--kind", choices=["max", "avg"], default="max", help="default: max")
    stack = what.add_parser(
        "stack",
        help="receptive field and parameters of a conv stack vs one layer",
        description=STACK,
        formatter_class=fmt,
    )
    stack.add_argument("layers", metavar="LAYERS", help="comma-separated layer specs, e.g. 3x3,3x3,3x3")
    stack.add_argument(
        "--vs", metavar="LAYERS", help="what to compare with, e.g. 7x7 (default: no comparison)"
    )
    stack.add_argument(
        "--channels",
        type=int,
        default=64,
        metavar="C",
        help="channels into and out of every conv (default: 64)",
    )
    stack.add_argument(
        "--strides", metavar="S,S,...", help="one stride per layer, overriding those in the specs"
    )
    for child in (conv, pool, stack):
        add_common(child)
    p.set_defaults(handler=run)
    return p


def _add_volume(parser, example: str) -> None:
    c, h, w = example.split("x")
    parser.add_argument("--input", metavar="CxHxW", help=f"input volume C x H x W, e.g. {example}")
    parser.add_argument(
        "--hwc", metavar="HxWxC", help=f"the same volume in the lecture's order, e.g. {h}x{w}x{c}"
    )
    parser.add_argument("--width", type=int, metavar="W", help="input width (with --height and --depth)")
    parser.add_argument("--height", type=int, metavar="H", help="input height")
    parser.add_argument("--depth", type=int, metavar="D", help="input depth: channels (default: 1)")


def input_volume(args, calc) -> tuple:
    """(H, W, C) from exactly one of --input CxHxW, --hwc HxWxC or --width/--height[/--depth];
    a 'did you mean' warning on stderr when --input looks written as H x W x C."""
    sizes = (args.width, args.height, args.depth)
    given = [flag for flag, v in (("--input", args.input), ("--hwc", args.hwc)) if v is not None]
    given += ["--width/--height/--depth"] if any(v is not None for v in sizes) else []
    if len(given) != 1:
        raise UsageError(
            "give the input volume once: --input CxHxW (e.g. 3x32x32), --hwc HxWxC (e.g. 32x32x3) "
            "or --width W --height H [--depth D]" + (f"; got {' and '.join(given)}" if given else "")
        )
    if args.input is not None:
        c, h, w = calc.parse_chw(args.input)
        warning = calc.chw_order_warning((c, h, w), args.input)
        if warning:
            print(warning, file=sys.stderr)
        return h, w, c
    if args.hwc is not None:
        return calc.parse_hwc(args.hwc)
    if args.width is None or args.height is None:
        raise UsageError("--width and --height go together (--depth defaults to 1)")
    h, w, c = args.height, args.width, 1 if args.depth is None else args.depth
    return calc.parse_ints((h, w, c), "--height x --width x --depth", "positive whole numbers", (3,))


def run(args) -> int:
    """Compute, print the working (one block of lines) and, with --json, one JSON object."""
    from .. import schemas
    from ..analysis import calc

    try:
        if args.calc_command == "conv":
            result = calc.conv_calc(
                input_volume(args, calc),
                args.filters,
                args.kernel,
                args.stride,
                args.padding,
                args.dilation,
                args.groups,
                args.bias,
            )
        elif args.calc_command == "pool":
            result = calc.pool_calc(
                input_volume(args, calc),
                args.kernel,
                args.stride,
                args.padding,
                args.dilation,
                args.ceil_mode,
                args.kind,
            )
        else:
            result = calc.stack_calc(args.layers, args.vs, args.channels, args.strides)
    except calc.CalcUsageError as e:
        raise UsageError(str(e)) from e
    print("\n".join(result["lines"][:1] + ["  " + line for line in result["lines"][1:]]))
    if args.json:
        emit_json(schemas.calc(result))
    return 0
