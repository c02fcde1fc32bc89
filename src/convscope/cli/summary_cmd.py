"""`convscope summary`: per-layer shapes, parameters, MACs and receptive fields of a model or checkpoint."""

from __future__ import annotations

import os
import sys

from .common import UsageError, add_common, emit_json

HELP = "show a model's layers: output shapes, parameters, MACs, receptive field, jump and padding"


def add_parser(sub):
    p = sub.add_parser(
        "summary",
        help=HELP,
        description=HELP + ". MODEL is a registry name "
        "(see --list), a checkpoint file or an .onnx file. Receptive fields are exact on branching "
        "networks (the maximum over all paths, e.g. through ResNet's shortcuts); "
        "'layers' counts conv + FC layers on the deepest path, as the lecture does.",
    )
    p.add_argument("model", nargs="?", help="registry name (e.g. vgg16), checkpoint path or .onnx file")
    p.add_argument(
        "--input",
        help="input size CxHxW, e.g. 3x224x224, or CxL for 1-D models, e.g. 1x150 (default: the model's own)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        dest="num_classes",
        help="classifier size for registry models (default: 1000 for ImageNet models, else 10)",
    )
    p.add_argument("--list", action="store_true", help="list the registered models and exit")
    add_common(p)
    p.set_defaults(handler=run)
    return p


def load_model(spec, num_classes=None):
    """A registry name or a checkpoint path -> (model, default input size (C, H, W), label)."""
    from .. import models
    from ..models.loading import is_onnx_path, load_model_file

    if is_onnx_path(spec):
        loaded = load_model_file(spec)
        return loaded.model, loaded.input_shape, loaded.label
    if os.path.exists(spec) or spec.endswith(".npz"):
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(spec)
        shape = tuple(ckpt.preprocessing.get("input_shape") or models.model_info(ckpt.model_name).input_size)
        return ckpt.build_model(), shape, f"{ckpt.model_name} ({spec})"
    info = models.model_info(spec)
    if num_classes is None:
        num_classes = 1000 if info.input_size[1] >= 224 else (2 if info.family == "unet" else 10)
    return models.create(spec, num_classes=num_classes), info.input_size, spec


def run(args) -> int:
    from .. import models, schemas
    from ..analysis import parse_input_size, summary
    from ..analysis.calc import chw_order_warning

    if args.list:
        rows = [
            (n, models.model_info(n).family, "x".join(map(str, models.model_info(n).input_size)))
            for n in models.list_models()
        ]
        from ..tables import format_table

        print(format_table(["model", "family", "input"], rows, align="lll"))
        if args.json:
            emit_json(schemas.model_list([r[0] for r in rows]))
        return 0
    if not args.model:
        raise UsageError("give a model name or a checkpoint (or --list)")
    if args.input is not None:
        try:
            size = parse_input_size(args.input)
        except ValueError as e:
            raise UsageError(f"--input: {e}") from None
        warning = chw_order_warning(size, args.input)
        if warning:
            print(warning, file=sys.stderr)
    model, default, label = load_model(args.model, args.num_classes)
    if args.input is None and default is None:
        raise UsageError(f"{args.model} does not fix its input size (dynamic dimensions): give --input CxHxW")
    if args.input is not None and default is not None and len(size) != len(default):
        want = (
            "CxL (channels x length) for this 1-D model"
            if len(default) == 2
            else "CxHxW for this image model"
        )
        raise UsageError(f"--input: expected {want}, e.g. {'x'.join(map(str, default))}; got {args.input!r}")
    result = summary(model, args.input and size or default, model_name=label)
    print(result)
    if args.json:
        emit_json(schemas.summary(result))
    return 0
