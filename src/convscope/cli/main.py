"""Entry point of the `convscope` command: parse, dispatch, and turn errors into one line.

With ``--json`` anywhere on the command line, stdout carries exactly one JSON object: the
command's result, or ``{"error": ..., "type": ...}`` (argument errors included) with a
non-zero exit. Human-readable text then goes to stderr.
"""

from __future__ import annotations

import contextlib
import sys

from .common import ParseError, Parser, UsageError, emit_json, err, json_output


def build_parser() -> Parser:
    from . import (
        calc_cmd,
        convert_cmd,
        evaluate_cmd,
        experiment_cmd,
        explain_cmd,
        export_cmd,
        info_cmd,
        predict_cmd,
        serve_cmd,
        summary_cmd,
        train_cmd,
    )

    parser = Parser(
        prog="convscope", description="convscope: build, train, inspect and explain CNNs on NumPy."
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands = (
        train_cmd,
        evaluate_cmd,
        predict_cmd,
        summary_cmd,
        calc_cmd,
        explain_cmd,
        info_cmd,
        convert_cmd,
        export_cmd,
        experiment_cmd,
        serve_cmd,
    )
    for module in commands:
        module.add_parser(sub)
    return parser


def _expected_errors() -> tuple:
    from ..checkpoint import CheckpointError
    from ..data import DataError
    from ..train import TrainingDiverged

    # OSError covers FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError
    return (DataError, CheckpointError, TrainingDiverged, OSError, ValueError, TypeError)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in argv
    stdout = sys.stdout
    json_output(stdout if want_json else None)
    # under --json everything printed for people goes to stderr; emit_json keeps the real stdout
    quiet = contextlib.redirect_stdout(sys.stderr) if want_json else contextlib.nullcontext()
    try:
        with quiet:
            return _run(argv, want_json)
    finally:
        json_output(None)


def _run(argv: list, want_json: bool) -> int:
    from ..kernels.memory import keep_freed_memory

    keep_freed_memory()  # the command's choice (CONVSCOPE_SYSTEM_MALLOC=1 leaves malloc alone)
    parser = build_parser()
    debug = "--debug" in argv
    try:
        args = parser.parse_args(argv)
    except ParseError as e:
        e.parser.print_usage(sys.stderr)
        return _fail(e.parser.prog, e, want_json, 2)
    name = getattr(args.usage_parser, "prog", f"convscope {args.command}")
    try:
        return args.handler(args)
    except UsageError as e:
        if debug:
            raise
        args.usage_parser.print_usage(sys.stderr)
        return _fail(name, e, want_json, 2)
    except _expected_errors() as e:
        if debug:
            raise
        return _fail(name, e, want_json, 1)
    except KeyboardInterrupt as e:
        print(f"{name}: interrupted", file=sys.stderr)
        if want_json:
            emit_json(_error_json(e, "interrupted"))
        return 130


def _error_json(exc: BaseException, message: str | None = None) -> dict:
    from .. import schemas

    kind = "UsageError" if isinstance(exc, UsageError) else type(exc).__name__
    return schemas.error(message or str(exc) or kind, kind)


def _fail(name: str, exc: BaseException, want_json: bool, code: int) -> int:
    err(name, exc)
    if want_json:
        emit_json(_error_json(exc))
    return code


if __name__ == "__main__":
    sys.exit(main())
