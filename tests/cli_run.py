"""Test helper: run the ``convscope`` command in-process and read what it printed."""

from __future__ import annotations

import json

from convscope.cli import main


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of ``convscope *args``."""
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str):
    """The JSON object a ``--json`` run prints on its last line."""
    return json.loads(out.strip().splitlines()[-1])
