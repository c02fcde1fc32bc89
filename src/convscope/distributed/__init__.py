"""Data-parallel training over MPI (mpi4py): the shape of PyTorch's DDP and Horovod.

Launch N processes with ``mpiexec -n N python script.py`` (or ``convscope train --distributed``);
each trains on its shard of every global batch and the gradients are summed with ``Allreduce``.

Example:
    >>> from convscope import distributed as dist
    >>> dist.init(); model = dist.DistributedDataParallel(model)   # rank 0's weights everywhere
    >>> dist.broadcast_optimizer_state(optimizer)
    >>> sampler = dist.DistributedSampler(train, seed=0)
    >>> loader = DataLoader(train, batch_size=32, sampler=sampler, seed=0)
"""

from .comm import DistributedError, init, is_initialized, launched_by_mpi, rank, size
from .ddp import DistributedDataParallel, broadcast_buffers, broadcast_optimizer_state, broadcast_parameters
from .sampler import DistributedSampler
from .sync_bn import SyncBatchNorm

__all__ = [
    "DistributedError",
    "DistributedDataParallel",
    "DistributedSampler",
    "SyncBatchNorm",
    "broadcast_buffers",
    "broadcast_optimizer_state",
    "broadcast_parameters",
    "init",
    "is_initialized",
    "launched_by_mpi",
    "rank",
    "size",
]
