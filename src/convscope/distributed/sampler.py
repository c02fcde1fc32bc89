"""DistributedSampler: each rank's share of every global batch, with no padding.

Rank ``r`` of ``N`` takes every N-th sample of the epoch's permutation, starting at ``r`` (as
PyTorch's DistributedSampler), and its local batch ``g`` is the ``g``-th run of ``batch_size``
of those. Local batch ``g`` of every rank together is therefore exactly global batch ``g`` of a
single process with batch ``N * batch_size`` and the same seed: positions
``[g * N * b, (g + 1) * N * b)`` of the same permutation. Unlike PyTorch's sampler, the epoch is
not padded with repeated samples: the last global batch, when smaller, is split into shards that
differ by at most one sample (a rank may get none), and every rank runs the same number of
steps. The trainer weights each rank's gradient by its shard's size, so the reduced gradient is
the single-process mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

from ..data.loader import epoch_permutation


class DistributedSampler:
    """The data-set indices rank ``rank`` of ``num_replicas`` trains on.

    Args:
        dataset: anything with ``len()`` (or an int: the number of samples).
        num_replicas (int, optional): N, the number of processes (default: the MPI size).
        rank (int, optional): this process's rank (default: the MPI rank).
        shuffle (bool, default True): a seeded permutation per epoch (the one
            ``DataLoader(shuffle=True, seed=seed)`` uses).
        seed (int, default 0): the permutation's seed.
        drop_last (bool, default False): must stay False (a smaller last batch is split instead).

    Raises:
        ValueError: a rank outside [0, num_replicas), a bad count or seed, or ``drop_last``.

    Example:
        >>> s = DistributedSampler(10, num_replicas=2, rank=1, shuffle=False)
        >>> [b.tolist() for b in s.batch_indices(0, batch_size=3)]
        [[1, 3, 5], [7, 9]]
    """

    def __init__(
        self,
        dataset: Sized | int,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if num_replicas is None or rank is None:
            from . import comm

            num_replicas = comm.size() if num_replicas is None else num_replicas
            rank = comm.rank() if rank is None else rank
        for name, value in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"DistributedSampler: {name} must be a non-negative int, got {value!r}")
        if num_replicas < 1 or rank >= num_replicas:
            raise ValueError(
                f"DistributedSampler: expected 0 <= rank < num_replicas, got rank={rank}, "
                f"num_replicas={num_replicas}"
            )
        if drop_last:
            raise ValueError(
                "DistributedSampler: drop_last=True is not supported; the last, smaller global batch "
                "is split across the ranks instead of padded or dropped"
            )
        self.num_samples_total = int(dataset) if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), False
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation for the next ``iter()`` (as PyTorch's)."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The whole epoch's sample order (every rank's samples)."""
        n = self.num_samples_total
        return epoch_permutation(self.seed, epoch, n) if self.shuffle else np.arange(n)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's samples of ``epoch``: every N-th of the order, starting at the rank."""
        return self.order(epoch)[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch).tolist())

    def __len__(self) -> int:
        n, r, k = self.num_samples_total, self.rank, self.num_replicas
        return max(0, math.ceil((n - r) / k))

    def num_batches(self, batch_size: int) -> int:
        """Steps per epoch, the same on every rank: ceil(samples / (N * batch_size))."""
        return math.ceil(self.num_samples_total / (self.num_replicas * int(batch_size)))

    def global_batch_size(self, step: int, batch_size: int) -> int:
        """How many samples all ranks together process in step ``step`` of an epoch."""
        total = self.num_replicas * int(batch_size)
        return max(0, min(total, self.num_samples_total - step * total))

    def batch_indices(self, epoch: int, batch_size: int) -> list:
        """This rank's local batches of ``epoch`` (index arrays; the last ones may be short or empty)."""
        mine, b = self.indices(epoch), int(batch_size)
        return [mine[g * b : (g + 1) * b] for g in range(self.num_batches(b))]

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(n={self.num_samples_total}, num_replicas={self.num_replicas}, "
            f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed})"
        )


def resume_batch_size(batch_size: int, saved_processes: int, processes: int) -> int:
    """The per-process batch that keeps a run's global batch when it resumes on another number of
    processes (``--batch-size`` is per process; the global batch defines the training).

    Raises:
        ValueError: the global batch cannot be shared equally by ``processes``.
    """
    total = int(batch_size) * int(saved_processes)
    if total % processes:
        raise ValueError(
            f"--resume: the run's global batch is {saved_processes} x {batch_size} = {total} samples, "
            f"which {processes} processes cannot share equally; resume on a number of processes that "
            f"divides {total}"
        )
    return total // processes
