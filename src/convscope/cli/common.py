"""Shared CLI plumbing: one-line errors, --debug, --json output, HxW parsing and output folders."""

from __future__ import annotations

import argparse
import json
import os
import sys


class UsageError(ValueError):
    """A malformed command-line value (reported with the command's usage line)."""


class ParseError(UsageError):
    """argparse rejected the command line; ``parser`` is the (sub)parser that did."""

    def __init__(self, message: str, parser: argparse.ArgumentParser):
        super().__init__(message)
        self.parser = parser


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised (ParseError) instead of exiting, so that
    ``main`` can report them as one line, or as a JSON error object under ``--json``.
    Subparsers inherit the class."""

    def error(self, message):
        raise ParseError(message, self)


class _JsonSink:
    """Where emit_json writes: the real stdout while ``main`` sends human text to stderr."""

    stream = None


def json_output(stream) -> None:
    """Send emit_json's objects to ``stream`` (None: the current sys.stdout)."""
    _JsonSink.stream = stream


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
    """Print one JSON object (a convscope.schemas shape) on the command's JSON stream."""
    print(json.dumps(obj, default=_default), file=_JsonSink.stream or sys.stdout, flush=True)


def _default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def err(command: str, message) -> None:
    """One line on stderr: ``convscope SUBCOMMAND: error: first line of message``."""
    text = str(message).splitlines()[0] if str(message) else type(message).__name__
    prefix = command if command.startswith("convscope") else f"convscope {command}"
    print(f"{prefix}: error: {text}", file=sys.stderr)


def check_out_dir(path, flag: str = "--out") -> str:
    """Refuse an output folder that is a file or lies under a file (before any work is done).

    Returns the path unchanged; raises UsageError naming the file that is in the way.
    """
    probe = os.path.abspath(os.fspath(path))
    while True:
        if os.path.exists(probe):
            if not os.path.isdir(probe):
                where = "is a file" if probe == os.path.abspath(path) else f"lies under the file {probe}"
                raise UsageError(f"{flag} {path} {where}; expected a folder (or a new folder's name)")
            return os.fspath(path)
        parent = os.path.dirname(probe)
        if parent == probe:
            return os.fspath(path)
        probe = parent


def check_out_file(path, flag: str = "--out") -> str:
    """Refuse an output file that is a folder or lies under a file; returns the path."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a folder; expected a file name such as figure.png")
    check_out_dir(os.path.dirname(os.path.abspath(path)), flag)
    return os.fspath(path)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 image', '2 images' (``nouns`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def load_image(predictor, path, invert: bool = False) -> tuple:
    """(image (1, C, H, W) in [0, 1], model input, the file's own (H, W)) of an image file; a
    notice on stderr when it had to be resized to the model's input."""
    image, x, (width, height) = predictor.prepare(path, invert=invert)
    h, w = image.shape[2:]
    if (width, height) != (w, h):
        print(
            f"notice: resized {path} from {width}x{height} to the model's input {w}x{h} (width x height)",
            file=sys.stderr,
        )
    return image, x, (height, width)
