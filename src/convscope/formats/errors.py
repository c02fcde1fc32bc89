"""The errors every weights format raises."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A file is not a readable weights file (corrupt, truncated, foreign or of an unknown kind)."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle inside a weights file names a global outside convscope's allowlist.

    Nothing from the file has run when this is raised: the global is refused before it is
    looked up, so a hostile file (``os.system``, ``builtins.eval``, any class) does nothing.
    """
