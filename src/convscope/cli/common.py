"""Shared CLI plumbing: one-line errors, --debug, --json output and HxW parsing."""

from __future__ import annotations

import argparse
import json
import sys


class UsageError(ValueError):
    """A malformed command-line value (reported with the command's usage line)."""


def parse_hw(text: str, name: str = "size") -> tuple:
    """'28' -> (28, 28); '32x48' -> (32, 48); a UsageError otherwise."""
    from ..analysis.calc import parse_size

    try:
        return parse_size(text, name, expected="28 or 32x48")
    except ValueError as e:
        raise UsageError(str(e)) from None


def add_common(parser: argparse.ArgumentParser) -> None:
    """--json and --debug, which every command has; a usage error prints this parser's usage line."""
    parser.set_defaults(usage_parser=parser)
    parser.add_argument(
        "--json", action="store_true", help="end by printing one JSON object with the results"
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def add_preprocessing_flags(parser: argparse.ArgumentParser) -> None:
    """--mean, --std and --image-size: the preprocessing of an ONNX file that does not carry it."""
    parser.add_argument(
        "--mean", help="per-channel mean for an ONNX file without preprocessing metadata (e.g. 0.5,0.5,0.5)"
    )
    parser.add_argument("--std", help="per-channel std for an ONNX file without preprocessing metadata")
    parser.add_argument(
        "--image-size",
        dest="image_size",
        help="HxW input size for an ONNX file whose input size is dynamic (e.g. 224 or 224x224)",
    )


def preprocessing_flags(args) -> dict:
    """mean, std, image_size keyword arguments from :func:`add_preprocessing_flags`' flags."""

    def floats(text, name):
        if text is None:
            return None
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            raise UsageError(f"--{name}: expected comma-separated numbers, got {text!r}") from None

    size = parse_hw(args.image_size, "--image-size") if getattr(args, "image_size", None) else None
    return {"mean": floats(args.mean, "mean"), "std": floats(args.std, "std"), "image_size": size}


def emit_json(obj) -> None:
    print(json.dumps(obj, default=_default))


def _default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def err(command: str, message) -> None:
    text = str(message).splitlines()[0] if str(message) else type(message).__name__
    print(f"convscope {command}: error: {text}", file=sys.stderr)


def load_image(predictor, path) -> tuple:
    """(image (1, C, H, W) in [0, 1], model input, the file's own (H, W)) of an image file; a
    notice on stderr when it had to be resized to the model's input."""
    image, x, (width, height) = predictor.prepare(path)
    h, w = image.shape[2:]
    if (width, height) != (w, h):
        print(
            f"notice: resized {path} from {width}x{height} to the model's input {w}x{h} (width x height)",
            file=sys.stderr,
        )
    return image, x, (height, width)
