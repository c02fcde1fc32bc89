"""Random draws keyed by (seed, epoch, sample index): augmentation that does not depend on batching.

A batch transform (``RandomCrop``, ``RandomHorizontalFlip``, ...) draws one value per sample
per call from the generator it is handed. :class:`SampleRandom` answers those draws from a
counter-based hash of (seed, epoch, the sample's index in the data set, call number), so a
sample gets the same crop and flip whether it sits in a batch of 32 on one process or in a
shard of 16 on one of two processes, and a resumed run redraws them exactly.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TAG = 0x5341_4D50  # distinguishes this stream from any other use of the same seed


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic): a bijective 64-bit hash."""
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


class SampleRandom:
    """A stand-in for ``numpy.random.Generator`` that draws one value per sample, keyed by its index.

    Supports the draws batch transforms make: ``random(n)`` and ``integers(low, high, size=n)``
    with ``n`` the number of samples; each call is a new, independent draw for every sample.

    Args:
        seed (int): the loader's seed.
        epoch (int): the epoch.
        indices (array of int): each sample's index in the data set, in batch order.

    Raises:
        ValueError: a draw whose size is not one value per sample.

    Example:
        >>> SampleRandom(0, 1, np.array([4, 7])).integers(0, 9, size=2).shape
        (2,)
    """

    def __init__(self, seed: int, epoch: int, indices: np.ndarray):
        with np.errstate(over="ignore"):
            base = _mix(np.array([int(seed) & (2**64 - 1)], np.uint64) ^ np.uint64(_TAG))
            base = _mix(base + np.uint64(int(epoch)) * _GOLDEN)
            self._keys = _mix(base + np.asarray(indices, dtype=np.uint64) * _GOLDEN)
        self._calls = 0

    def __len__(self) -> int:
        return len(self._keys)

    def _bits(self, size) -> np.ndarray:
        n = len(self._keys)
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size or ())
        if shape != (n,):
            raise ValueError(
                f"SampleRandom: draws are one value per sample, so size must be {n}, got {size!r}"
            )
        self._calls += 1
        with np.errstate(over="ignore"):
            return _mix(self._keys + np.uint64(self._calls) * _MUL2)

    def random(self, size=None, dtype=np.float64) -> np.ndarray:
        """Uniform floats in [0, 1), one per sample (53 bits)."""
        u = (self._bits(size) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
        return u.astype(dtype, copy=False)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint: bool = False) -> np.ndarray:
        """Integers in [low, high) (or [low, high] with ``endpoint``), one per sample.

        Bias: the span is at most a few dozen in augmentation, against 2**64 values: below 1e-17.
        """
        if high is None:
            low, high = 0, low
        span = int(high) - int(low) + (1 if endpoint else 0)
        if span < 1:
            raise ValueError(f"SampleRandom.integers: empty range low={low}, high={high}")
        return (self._bits(size) % np.uint64(span)).astype(np.int64).astype(dtype) + dtype(low)
