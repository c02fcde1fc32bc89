"""The one exception type of :mod:`convscope.data`."""

from __future__ import annotations


class DataError(ValueError):
    """A data set, file or image cannot be used as given.

    The message is one line saying what is wrong, what was expected and what was
    found, including the path involved, so the command line can print it as is.
    It subclasses ``ValueError`` so ``except ValueError`` still catches it.
    """
