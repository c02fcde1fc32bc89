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
