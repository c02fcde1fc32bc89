"""`convscope export`: write a trained checkpoint (or an imported ONNX model) as an ONNX file."""

from __future__ import annotations

from .common import UsageError, add_common, emit_json

HELP = "export a checkpoint to ONNX (for onnxruntime in Python, C, C++, C#, Java, JavaScript)"


def add_parser(sub):
    p = sub.add_parser(
        "export",
        help=HELP,
        description=HELP + ". The graph is read off one forward pass at the training input size; "
        "the batch dimension stays dynamic. The training preprocessing (per-channel mean/std, input "
        "size, class names) goes into the file's metadata_props.",
    )
    p.add_argument("checkpoint", help="a .npz checkpoint (or a run folder holding best.npz), or a .onnx file")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset 13-20 (default: 17)")
    p.add_argument(
        "--fold-normalization",
        action="store_true",
        dest="fold_normalization",
        help="put (x - mean) / std into the graph, so it takes images scaled to [0, 1]",
    )
    p.add_argument(
        "--static-batch",
        action="store_true",
        dest="static_batch",
        help="fix the batch dimension at 1 instead of leaving it dynamic",
    )
    add_common(p)
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    import numpy as np

    from ..models.loading import load_model_file
    from ..onnx.builder import SUPPORTED_EXPORT_OPSETS
    from ..onnx.export import export

    if args.opset not in SUPPORTED_EXPORT_OPSETS:
        raise UsageError(f"--opset must be between 13 and 20, got {args.opset}")
    loaded = load_model_file(args.checkpoint)
    if loaded.input_shape is None:
        raise ValueError(f"{args.checkpoint} does not record its input size, which the export needs")
    pre = {"input_size": list(loaded.input_shape)}
    if loaded.normalizer is not None:
        pre.update(mean=loaded.normalizer.mean.tolist(), std=loaded.normalizer.std.tolist())
    if loaded.classes:
        pre["classes"] = list(loaded.classes)
    if args.fold_normalization and loaded.normalizer is None:
        raise UsageError(f"--fold-normalization: {args.checkpoint} has no per-channel mean/std")
    x = np.zeros((1, *loaded.input_shape), dtype=np.float32)
    proto = export(
        loaded.model,
        x,
        args.output,
        opset=args.opset,
        dynamic_batch=not args.static_batch,
        preprocessing=pre,
        fold_normalization=args.fold_normalization,
    )
    ops = sorted({n.op_type for n in proto.graph.node})
    print(
        f"wrote {args.output}: opset {args.opset}, IR version {proto.ir_version}, {len(proto.graph.node)} "
        f"nodes ({', '.join(ops)}), input {'x'.join(map(str, loaded.input_shape))}"
        + (", normalisation in the graph" if args.fold_normalization else "")
    )
    if args.json:
        emit_json(
            {
                "output": args.output,
                "opset": args.opset,
                "ir_version": proto.ir_version,
                "nodes": len(proto.graph.node),
                "op_types": ops,
                "input_shape": list(loaded.input_shape),
                "normalization_in_graph": bool(args.fold_normalization),
            }
        )
    return 0
