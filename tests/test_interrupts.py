"""deferred_interrupt: a Ctrl-C inside the block surfaces only when the block is done."""

import os
import signal
import threading

import pytest

from convscope.train.interrupts import deferred_interrupt


def test_sigint_inside_is_raised_after_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("rest of the block ran")
    assert done == ["rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_exception_and_handler_restored():
    with deferred_interrupt():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_exception_in_block_wins_over_deferred_signal():
    with pytest.raises(ValueError):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            raise ValueError("inner")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_main_thread_it_does_nothing():
    # signal handlers can only be installed from the main thread: elsewhere the block runs
    # with Python's handler untouched (and must not fail)
    seen = []

    def body():
        with deferred_interrupt():
            seen.append(signal.getsignal(signal.SIGINT) is signal.default_int_handler)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [True]
