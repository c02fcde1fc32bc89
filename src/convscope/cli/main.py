"""Entry point of the `convscope` command: parse, dispatch, and turn errors into one line."""

from __future__ import annotations

import argparse
import sys

from .common import UsageError, err


def build_parser() -> argparse.ArgumentParser:
    from . import (
        calc_cmd,
        convert_cmd,
        evaluate_cmd,
        explain_cmd,
        export_cmd,
        info_cmd,
        predict_cmd,
        summary_cmd,
        train_cmd,
    )

    parser = argparse.ArgumentParser(
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
    )
    for module in commands:
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..checkpoint import CheckpointError
    from ..kernels.memory import keep_freed_memory

    keep_freed_memory()  # the command's choice (CONVSCOPE_SYSTEM_MALLOC=1 leaves malloc alone)
    from ..data import DataError
    from ..train import TrainingDiverged

    try:
        return args.handler(args)
    except UsageError as e:
        if args.debug:
            raise
        args.usage_parser.print_usage(sys.stderr)
        err(args.command, e)
        return 2
    except (
        DataError,
        CheckpointError,
        TrainingDiverged,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
        ValueError,
        TypeError,
    ) as e:
        if args.debug:
            raise
        err(args.command, e)
        return 1
    except KeyboardInterrupt:
        print(f"convscope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
