"""What the Trainer asks of a distributed run: one object behind a few small hooks.

The Trainer stays a single-process loop; with ``Trainer(config, distributed=DistributedRun())``
it shards its loaders, scales each rank's loss to its share of the global batch, reduces the
gradients after backward and the step's statistics after the update, evaluates sharded, and lets
rank 0 alone write files and print. Start-up is collective: every rank loads the data, settings
are compared, and rank 0's decisions (run folder, checkpoint) are broadcast, so a problem on one
rank stops all of them before training with the same message.

Ctrl-C: each rank only records the signal; the flag rides on the next step's statistics
reduction, so all ranks stop after the same completed batch and rank 0 saves it (exact resume).
"""

from __future__ import annotations

import os
import signal
import tempfile

import numpy as np

from .. import random as cs_random
from . import comm
from .ddp import DistributedDataParallel, broadcast_buffers, broadcast_optimizer_state
from .sampler import DistributedSampler
from .sync_bn import SyncBatchNorm, phantom_batch

#: settings that may differ between ranks (rank 0's value is used)
_RANK_LOCAL_SETTINGS = ("out",)


class DistributedRun:
    """The distributed side of one training run (MPI must be launched; see :func:`comm.init`).

    Args:
        sync_bn (bool, default False): turn BatchNorm layers into :class:`SyncBatchNorm`.
        threads (int, optional): compute threads per rank (default: the machine's cores divided
            by the ranks on it, at least 1: waiting ranks busy-poll, so more would oversubscribe).

    Raises:
        DistributedError: not started by an MPI launcher, or mpi4py missing.
    """

    def __init__(self, sync_bn: bool = False, threads: int | None = None):
        from .. import set_num_threads

        self.comm = comm.init()
        self.rank, self.size = comm.rank(), comm.size()
        self.sync_bn = bool(sync_bn)
        self.local_size = comm.local_size()
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.threads = threads or max(1, self.cores // self.local_size)
        set_num_threads(self.threads)
        self.ddp: DistributedDataParallel | None = None
        self.sampler: DistributedSampler | None = None
        self._stop_requested = False
        self._stats = np.zeros(4, np.float64)
        if comm._main_thread():
            signal.signal(signal.SIGINT, self._on_sigint)

    # ------------------------------------------------------------------ start-up
    @property
    def is_writer(self) -> bool:
        """Rank 0 writes checkpoints, history and figures, and prints; the others stay silent."""
        return self.rank == 0

    def describe(self) -> str:
        return (
            f"distributed: {self.size} processes ({self.local_size} on this machine, {self.cores} cores): "
            f"{self.threads} thread{'s' if self.threads > 1 else ''} per process, so ranks x threads "
            f"<= cores (ranks waiting in MPI busy-poll a core)"
        )

    def shared(self, value):
        """Rank 0's value of a start-up decision (run folder, whether a file exists) on every rank."""
        return comm.broadcast_object(value)

    def collective(self, what: str, fn):
        """Run ``fn()`` on every rank; if it fails anywhere, raise the same error on all ranks."""
        result, error = None, None
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - reported to every rank below
            error = f"{type(e).__name__}: {e}".splitlines()[0]
        errors = comm.allgather_object(error)
        failed = [(r, text) for r, text in enumerate(errors) if text is not None]
        if failed:
            first, text = failed[0]
            more = f" (and {len(failed) - 1} other rank(s))" if len(failed) > 1 else ""
            raise comm.DistributedError(
                f"{what} failed on rank {first}{more}: {text}; no rank started training"
            )
        return result

    def check_settings(self, settings: dict) -> None:
        """Stop every rank when a setting differs from rank 0's (seed, model, data, batch size...)."""
        mine = {k: v for k, v in settings.items() if k not in _RANK_LOCAL_SETTINGS}
        everyone = comm.allgather_object(mine)
        for r, theirs in enumerate(everyone):
            diff = sorted(k for k in set(theirs) | set(everyone[0]) if theirs.get(k) != everyone[0].get(k))
            if diff:
                k = diff[0]
                raise comm.DistributedError(
                    f"settings differ between ranks: {k}={everyone[0].get(k)!r} on rank 0 but "
                    f"{theirs.get(k)!r} on rank {r}; every rank must run the same command"
                )

    def load_checkpoint(self, path: str):
        """Rank 0 reads the checkpoint file and sends its bytes; every rank loads the same state."""
        from ..checkpoint import load_checkpoint

        if self.size == 1:
            return load_checkpoint(path)

        def read():
            with open(path, "rb") as f:
                return f.read()

        data = self.collective("reading the checkpoint", read if self.is_writer else lambda: None)
        data = comm.broadcast_bytes(data)
        if self.is_writer:
            return load_checkpoint(path)
        fd, tmp = tempfile.mkstemp(suffix=".npz", prefix=f"convscope-rank{self.rank}-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return load_checkpoint(tmp)
        finally:
            os.unlink(tmp)

    def prepare(self, model, optimizer, train_set, test_set, seed: int, frozen_bn=()):
        """Rank 0's weights and optimizer state on every rank; (model, train sampler, test sampler).

        With ``sync_bn`` the model's batch norms become SyncBatchNorm, except ``frozen_bn``."""
        if self.sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model, exclude=frozen_bn)
        self.ddp = DistributedDataParallel(model)
        broadcast_optimizer_state(optimizer)
        self.sampler = DistributedSampler(len(train_set.y), self.size, self.rank, shuffle=True, seed=seed)
        test_sampler = DistributedSampler(len(test_set.y), self.size, self.rank, shuffle=False, seed=seed)
        return model, self.sampler, test_sampler

    # ------------------------------------------------------------------ each step
    def start_epoch(self) -> None:
        """Every rank takes rank 0's generator state, then rank r jumps it r times (own dropout
        masks per rank; resuming from rank 0's saved state recreates every rank's)."""
        bits = cs_random.default_generator().bit_generator
        bits.state = comm.broadcast_object(bits.state)
        if self.rank:
            bits.state = bits.jumped(self.rank).state  # type: ignore[attr-defined]

    def loss_weight(self, step: int, batch_size: int, local: int) -> float:
        """This rank's share of the step's global batch: local / global sample count."""
        if self.sampler is None:
            raise comm.DistributedError("DistributedRun.prepare() has not been called")
        total = self.sampler.global_batch_size(step, batch_size)
        return local / total

    def phantom(self, loader):
        """(x, y, context) for a rank whose shard is empty: two real samples whose loss will be
        weighted by zero, run inside :class:`phantom_batch` so SyncBatchNorm counts nothing."""
        x = loader.x[:2].astype(np.float32)
        if loader.normalizer is not None:
            x = loader.normalizer(x)
        return np.asarray(x, np.float32), np.asarray(loader.y[:2], np.int64), phantom_batch()

    def after_backward(self) -> None:
        """Sum the gradients over the ranks (each rank's loss is already its weighted share)."""
        if self.ddp is None:
            raise comm.DistributedError("DistributedRun.prepare() has not been called")
        self.ddp.allreduce_gradients(average=False)

    def reduce_step(self, loss_sum: float, correct: int, seen: int) -> tuple[float, int, int, bool]:
        """The step's global (loss sum, correct, samples) and whether any rank asked to stop."""
        s = self._stats
        s[:] = (loss_sum, correct, seen, 1.0 if self._stop_requested else 0.0)
        comm.allreduce_sum_(s)
        return float(s[0]), int(round(s[1])), int(round(s[2])), bool(s[3] > 0)

    def before_evaluation(self, model) -> None:
        """Evaluate (and save) rank 0's BatchNorm running statistics on every rank."""
        broadcast_buffers(model)

    def reduce_evaluation(self, loss_sum: float, correct: int, seen: int) -> tuple[float, int, int, bool]:
        return self.reduce_step(loss_sum, correct, seen)

    def _on_sigint(self, signum, frame) -> None:
        self._stop_requested = True
