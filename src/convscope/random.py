"""The global random generator behind initialisation, dropout and shuffling.

``manual_seed(s)`` makes every later draw reproducible. Weight initialisers
draw from the same distributions as PyTorch's, not the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator; returns it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed expects an int, got {type(seed).__name__}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The generator used when no other is given."""
    return _generator


def get_rng_state() -> dict[str, Any]:
    """The generator's state (a JSON-friendly dict), for exact resume."""
    return dict(_generator.bit_generator.state)  # a fresh dict each call, as before


def set_rng_state(state: dict) -> None:
    """Restore a state from :func:`get_rng_state`."""
    _generator.bit_generator.state = state
