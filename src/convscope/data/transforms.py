"""Batch augmentations: each is ``transform(batch, rng) -> new batch``, vectorised over N.

The :class:`~convscope.data.loader.DataLoader` hands every batch a generator
derived from (seed, epoch, batch index), so an augmented epoch replays exactly
after a resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from .sample_random import SampleRandom


def _pair(value, what: str):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}") from None
    return a, b


def _check_batch(batch, who: str):
    batch = np.asarray(batch)
    if batch.ndim != 4:
        raise ValueError(f"{who}: expected a (N, C, H, W) batch, got shape {batch.shape}")
    return batch


class Transform(Protocol):
    """What the loader calls on each batch: ``transform(batch, rng) -> batch`` ((N, C, H, W) arrays)."""

    def __call__(self, batch: npt.NDArray[Any], rng: np.random.Generator | SampleRandom) -> np.ndarray: ...


class RandomCrop:
    """Zero-pad each image by ``padding`` then crop ``size`` at a random offset per sample.

    Args:
        size (int or (H_out, W_out)): crop size.
        padding (int or (pad_h, pad_w), default 0): zeros added on every side first.

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out), with H_out <= H + 2 * pad_h.

    Raises:
        ValueError: negative padding, or a crop larger than the padded image.

    Example:
        >>> RandomCrop(32, padding=4)(np.zeros((8, 3, 32, 32), np.float32), rng).shape
        (8, 3, 32, 32)
    """

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] = 0) -> None:
        self.size = _pair(size, "RandomCrop size")
        self.padding = _pair(padding, "RandomCrop padding")
        if min(self.size) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"RandomCrop: expected size >= 1 and padding >= 0, got "
                f"size={self.size} padding={self.padding}"
            )

    def __call__(self, batch: npt.NDArray[Any], rng: np.random.Generator | SampleRandom) -> np.ndarray:
        batch = _check_batch(batch, "RandomCrop")
        n, c, h, w = batch.shape
        ph, pw = self.padding
        th, tw = self.size
        if th > h + 2 * ph or tw > w + 2 * pw:
            raise ValueError(
                f"RandomCrop: crop {th}x{tw} is larger than the padded image {h + 2 * ph}x{w + 2 * pw}"
            )
        if ph or pw:
            padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=batch.dtype)
            padded[:, :, ph : ph + h, pw : pw + w] = batch
        else:
            padded = batch
        top = rng.integers(0, padded.shape[2] - th + 1, size=n)
        left = rng.integers(0, padded.shape[3] - tw + 1, size=n)
        # (N, C, H_pad, W_pad) -> view (N, C, H_pad-th+1, W_pad-tw+1, th, tw), no copy
        windows = sliding_window_view(padded, (th, tw), axis=(2, 3))  # type: ignore[call-overload,unused-ignore]
        # advanced indices on axes 0, 2, 3 split by a slice: broadcast axis N goes first
        return np.ascontiguousarray(windows[np.arange(n), :, top, left])  # -> (N, C, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (one draw per sample).

    Args:
        p (float, default 0.5): flip probability.

    Shape:
        (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, p: float = 0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, batch: npt.NDArray[Any], rng: np.random.Generator | SampleRandom) -> np.ndarray:
        batch = _check_batch(batch, "RandomHorizontalFlip")
        flip = rng.random(batch.shape[0]) < self.p
        out = batch.copy()
        out[flip] = batch[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order, all drawing from the same generator.

    Args:
        transforms (list): callables ``t(batch, rng) -> batch``.
    """

    def __init__(self, transforms: Iterable[Transform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, batch: npt.NDArray[Any], rng: np.random.Generator | SampleRandom) -> np.ndarray:
        for t in self.transforms:
            batch = t(batch, rng)
        return batch

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
