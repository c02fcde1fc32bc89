"""Mini-batches of NumPy arrays, reproducible from (seed, epoch) for exact resume."""

from __future__ import annotations

import math

import numpy as np

from .. import random as cs_random
from .sample_random import SampleRandom

# Fixed-length keys with a distinct tag per stream: SeedSequence pads short keys with
# zeros, so keys of different lengths could collide.
_SHUFFLE_TAG = 0x5348


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled sample order of ``epoch`` for a loader (or sampler) seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(epoch), 0, _SHUFFLE_TAG]).permutation(n)


class DataLoader:
    """Iterate over a data set in batches, optionally shuffled, augmented and normalised.

    The order of epoch ``e`` is a pure function of ``(seed, e)`` and the augmentation of
    each sample of ``(seed, e, its index)`` (see :class:`SampleRandom`), so a run resumed at
    epoch ``e`` (call :meth:`set_epoch`, or :meth:`iter_epoch` with ``start_batch``) sees the
    same batches, and a sample is augmented alike whatever batch or process it lands in.

    Args:
        dataset: an :class:`ArrayDataset` (anything with ``x`` and ``y`` arrays).
        batch_size (int, default 64): images per batch.
        shuffle (bool, default False): a new permutation every epoch.
        drop_last (bool, default False): skip a final batch smaller than ``batch_size``.
        seed (int, optional): base seed; default one drawn from convscope's global
            generator (so ``convscope.manual_seed`` fixes it).
        transform (callable, optional): ``transform(batch, rng) -> batch`` on [0, 1] images,
            e.g. ``Compose([RandomCrop(32, 4), RandomHorizontalFlip()])``; ``rng`` draws one
            value per sample per call.
        normalizer (callable, optional): applied after ``transform``, e.g. a ``Normalizer``.
        sampler (optional): chooses each batch's samples instead of ``shuffle``, e.g. a
            ``convscope.distributed.DistributedSampler`` (anything with ``num_batches(batch_size)``
            and ``batch_indices(epoch, batch_size)``); its batches may be empty.

    Shape:
        yields x (B, C, H, W) float32 and y (B,) int64, B <= batch_size.

    Raises:
        ValueError: a non-positive batch size or a bad seed.

    Example:
        >>> loader = DataLoader(splits.train, batch_size=32, shuffle=True, seed=0)
        >>> x, y = next(iter(loader)); x.shape
        (32, 1, 8, 8)
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        transform=None,
        normalizer=None,
        sampler=None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if seed is None:
            seed = int(cs_random.default_generator().integers(0, 2**63 - 1))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed!r}")
        self.dataset = dataset
        self.x = np.asarray(dataset.x)
        self.y = np.asarray(dataset.y)
        if len(self.x) != len(self.y):
            raise ValueError(f"DataLoader: {len(self.x)} images but {len(self.y)} labels")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.transform = transform
        self.normalizer = normalizer
        self.sampler = sampler
        if sampler is not None and drop_last:
            raise ValueError("DataLoader: drop_last cannot be combined with a sampler (it sets the batches)")
        self.epoch = 0

    def __len__(self) -> int:
        if self.sampler is not None:
            return self.sampler.num_batches(self.batch_size)
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` produce epoch ``epoch`` (then epoch + 1, ...)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: expected a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def permutation(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch``: ``arange(N)`` unless shuffling."""
        n = len(self.y)
        if not self.shuffle:
            return np.arange(n)
        return epoch_permutation(self.seed, epoch, n)

    def batch_indices(self, epoch: int) -> list:
        """The data-set indices of each batch of ``epoch`` (from the sampler when there is one)."""
        if self.sampler is not None:
            return self.sampler.batch_indices(epoch, self.batch_size)
        order = self.permutation(epoch)
        return [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(len(self))]

    def sample_rng(self, epoch: int, indices: np.ndarray) -> SampleRandom:
        """The generator handed to ``transform``: one draw per sample, keyed by its index."""
        return SampleRandom(self.seed, epoch, indices)

    def iter_epoch(self, epoch: int, start_batch: int = 0):
        """Yield the batches of ``epoch`` from batch ``start_batch`` on (for mid-epoch resume)."""
        for idx in self.batch_indices(epoch)[int(start_batch) :]:
            x, y = self.x[idx], self.y[idx]  # fancy indexing copies
            if self.transform is not None and len(idx):
                x = self.transform(x, self.sample_rng(epoch, idx))
            if self.normalizer is not None:
                x = self.normalizer(x)
            yield np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def __repr__(self) -> str:
        return (
            f"DataLoader(n={len(self.y)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch})"
        )
