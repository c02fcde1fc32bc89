"""DistributedSampler's sharding and the per-sample augmentation keys, without MPI."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.data import ArrayDataset, DataLoader, RandomCrop, RandomHorizontalFlip
from convscope.data.sample_random import SampleRandom
from convscope.distributed import DistributedSampler


def _shards(n, ranks, batch, epoch=3, seed=7):
    samplers = [DistributedSampler(n, ranks, r, shuffle=True, seed=seed) for r in range(ranks)]
    return [s.batch_indices(epoch, batch) for s in samplers], samplers


@pytest.mark.parametrize("n, ranks, batch", [(100, 2, 16), (97, 3, 8), (65, 2, 16), (5, 4, 1), (3, 4, 2)])
def test_global_batches_are_the_single_process_batches(n, ranks, batch):
    shards, samplers = _shards(n, ranks, batch)
    single = DataLoader(
        ArrayDataset(np.zeros((n, 1, 2, 2), np.float32), np.zeros(n, np.int64)),
        ranks * batch,
        shuffle=True,
        seed=7,
    ).batch_indices(3)
    assert all(len(s) == len(single) for s in shards)  # every rank runs the same number of steps
    for g, expected in enumerate(single):
        parts = [s[g] for s in shards]
        assert sorted(np.concatenate(parts).tolist()) == sorted(expected.tolist())
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == samplers[0].global_batch_size(g, batch)
        for r, p in enumerate(parts):  # rank r takes every N-th sample, starting at r
            assert p.tolist() == expected[r::ranks].tolist()


def test_no_padding_and_an_empty_last_shard():
    shards, samplers = _shards(65, 2, 16)  # global batches 32, 32, 1
    assert [len(b) for b in shards[0]] == [16, 16, 1] and [len(b) for b in shards[1]] == [16, 16, 0]
    everything = np.concatenate([b for s in shards for b in s])
    assert len(everything) == 65 and len(set(everything.tolist())) == 65
    assert [len(s) for s in samplers] == [33, 32]


def test_sampler_iterates_like_pytorch_without_padding():
    s = DistributedSampler(10, num_replicas=3, rank=1, shuffle=False)
    assert list(s) == [1, 4, 7] and len(s) == 3
    s.set_epoch(2)
    shuffled = DistributedSampler(10, num_replicas=3, rank=1, shuffle=True, seed=1)
    shuffled.set_epoch(2)
    assert list(shuffled) == shuffled.order(2)[1::3].tolist() and list(shuffled) != list(
        DistributedSampler(10, 3, 1, shuffle=True, seed=1)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_replicas": 2, "rank": 2}, "rank < num_replicas"),
        ({"num_replicas": 2, "rank": -1}, "non-negative"),
        ({"num_replicas": 2, "rank": 0, "drop_last": True}, "drop_last"),
        ({"num_replicas": 2, "rank": 0, "seed": 1.5}, "seed"),
    ],
)
def test_sampler_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistributedSampler(10, **kwargs)


def test_augmentation_depends_on_the_sample_not_the_batch():
    rng = np.random.default_rng(0)
    x = rng.random((12, 1, 6, 6)).astype(np.float32)
    data = ArrayDataset(x, np.arange(12) % 3)

    def aug(batch, r):
        return RandomHorizontalFlip()(RandomCrop(6, 2)(batch, r), r)

    whole = DataLoader(data, 12, shuffle=True, seed=4, transform=aug)
    halves = [
        DataLoader(data, 3, seed=4, transform=aug, sampler=DistributedSampler(12, 2, r, seed=4))
        for r in (0, 1)
    ]
    ((xw, yw),) = list(whole.iter_epoch(1))
    order = whole.permutation(1)
    for r, loader in enumerate(halves):
        for g, (xb, yb) in enumerate(loader.iter_epoch(1)):
            idx = order[r::2][g * 3 : (g + 1) * 3]
            pos = [int(np.flatnonzero(order == i)[0]) for i in idx]
            assert np.array_equal(xb, xw[pos]) and np.array_equal(yb, yw[pos])
    # and it is random: another epoch, or another seed, crops differently
    assert not np.array_equal(
        next(iter(whole.iter_epoch(2)))[0][np.argsort(whole.permutation(2))], xw[np.argsort(order)]
    )


def test_sample_random_draws():
    a = SampleRandom(1, 2, np.array([5, 9, 5]))
    u, k = a.random(3), a.integers(0, 7, size=3)
    assert u.shape == (3,) and (0 <= u).all() and (u < 1).all() and u[0] == u[2] and u[0] != u[1]
    assert k.dtype == np.int64 and k.min() >= 0 and k.max() < 7 and k[0] == k[2]
    b = SampleRandom(1, 2, np.array([5]))
    assert b.random(1)[0] == u[0] and b.integers(0, 7, size=1)[0] == k[0]  # the same sample, the same draws
    big = SampleRandom(0, 0, np.arange(20000)).integers(0, 4, size=20000)
    assert abs(np.bincount(big, minlength=4) / 20000 - 0.25).max() < 0.02
    with pytest.raises(ValueError, match="one value per sample"):
        a.random(2)


def test_resume_keeps_the_global_batch():
    from convscope.distributed.sampler import resume_batch_size

    assert (
        resume_batch_size(8, 2, 1) == 16
        and resume_batch_size(16, 1, 4) == 4
        and resume_batch_size(6, 2, 3) == 4
    )
    with pytest.raises(ValueError, match=r"2 x 8 = 16 samples, which 3 processes cannot share"):
        resume_batch_size(8, 2, 3)
