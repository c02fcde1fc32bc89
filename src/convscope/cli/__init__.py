"""The `convscope` command: one entry point with subcommands."""

from .main import main

__all__ = ["main"]
