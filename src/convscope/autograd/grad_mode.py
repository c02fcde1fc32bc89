"""Global switch for recording the autograd tape (``no_grad`` / ``enable_grad``)."""

from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when new ops are recorded on the tape (the default)."""
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    """Turn tape recording on or off for the current thread."""
    _state.enabled = bool(mode)


class _GradMode:
    _target = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(self._target)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator: ops inside record nothing and need no gradients.

    Example:
        >>> with convscope.no_grad():
        ...     y = model(x)          # y.requires_grad is False
    """

    _target = False


class enable_grad(_GradMode):
    """Context manager / decorator that turns recording back on inside ``no_grad``."""

    _target = True
