"""Hold Ctrl-C back while the training state is being updated.

A Ctrl-C may stop a batch anywhere in its forward or backward pass: nothing has changed
yet, and the saved state replays the batch on resume. Between the optimizer's update and
the bookkeeping that records the batch as done, it must not: the weights would hold a
batch the state says is still to do, and resume would apply it twice.
"""

from __future__ import annotations

import signal
import threading


class deferred_interrupt:
    """Context manager: a SIGINT inside the block is raised as KeyboardInterrupt on leaving it.

    Only in the main thread with Python's default SIGINT handler installed; elsewhere it
    does nothing (signals are delivered to the main thread only).
    """

    def __enter__(self):
        self._caught = False
        self._previous = None
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._catch)
        return self

    def _catch(self, signum, frame):
        self._caught = True

    def __exit__(self, exc_type, exc, tb):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self._caught and exc_type is None:
            raise KeyboardInterrupt
        return False
