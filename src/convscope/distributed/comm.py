"""The MPI process group: launch detection, init, rank/size, and stopping every rank on a fault.

mpi4py is imported only here and only by :func:`init`, so ``import convscope.distributed`` works
without it (the sampler needs no MPI). Collectives on the training path use mpi4py's uppercase,
buffer-protocol calls on contiguous arrays; pickled (lowercase) calls are used only at start.

A rank that dies or raises must not leave the others spinning in a collective forever: after
:func:`init`, an uncaught exception or SIGTERM on any rank prints a one-line reason and calls
``MPI.COMM_WORLD.Abort``, which makes the launcher stop every rank.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import numpy as np

#: environment variables a launcher sets in each process it starts (MPICH/Intel MPI, Open MPI, PMIx)
LAUNCH_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")

LAUNCH_HINT = (
    "start it under an MPI launcher, e.g. `mpiexec -n 2 convscope train --distributed ...` "
    "(mpiexec comes with `pip install 'convscope[mpi]'`)"
)

_STATE: dict[str, Any] = {"comm": None, "MPI": None}


class DistributedError(RuntimeError):
    """A problem every rank knows about (bad launch, mismatched settings, a rank without data).

    Every rank raises it together, so no rank is left waiting; the CLI reports it from rank 0.
    """


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (mpiexec, mpirun, srun with PMI)."""
    return any(name in os.environ for name in LAUNCH_VARIABLES)


def init(install_fault_handlers: bool = True) -> Any:
    """Initialise MPI (idempotent) and return ``MPI.COMM_WORLD``.

    Args:
        install_fault_handlers (bool, default True): make an uncaught exception or SIGTERM on
            this rank abort the whole job (see :func:`abort`).

    Returns:
        mpi4py.MPI.Intracomm: the world communicator.

    Raises:
        DistributedError: mpi4py is missing, or the process was not started by an MPI launcher.

    Example:
        >>> comm = convscope.distributed.init()   # under `mpiexec -n 2 python script.py`
        >>> convscope.distributed.rank(), convscope.distributed.size()
        (0, 2)
    """
    if _STATE["comm"] is not None:
        return _STATE["comm"]
    if not launched_by_mpi():
        raise DistributedError(f"distributed training needs an MPI launch: {LAUNCH_HINT}")
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(
            "distributed training needs mpi4py: pip install 'convscope[mpi]' (mpi4py and the mpich "
            "wheel), or mpi4py built against your system MPI"
        ) from None
    _STATE.update(comm=MPI.COMM_WORLD, MPI=MPI)
    if install_fault_handlers:
        _install_fault_handlers()
    return MPI.COMM_WORLD


def is_initialized() -> bool:
    """True after :func:`init`."""
    return _STATE["comm"] is not None


def world() -> Any:
    """``MPI.COMM_WORLD`` (after :func:`init`)."""
    if _STATE["comm"] is None:
        raise DistributedError("convscope.distributed.init() has not been called")
    return _STATE["comm"]


def mpi() -> Any:
    """The ``mpi4py.MPI`` module (after :func:`init`)."""
    world()
    return _STATE["MPI"]


def rank() -> int:
    """This process's rank in COMM_WORLD (0 when not initialised)."""
    return 0 if _STATE["comm"] is None else _STATE["comm"].Get_rank()


def size() -> int:
    """The number of processes in COMM_WORLD (1 when not initialised)."""
    return 1 if _STATE["comm"] is None else _STATE["comm"].Get_size()


def local_size() -> int:
    """How many ranks run on this machine (they share its cores)."""
    comm = world()
    node = comm.Split_type(mpi().COMM_TYPE_SHARED)
    try:
        return node.Get_size()
    finally:
        node.Free()


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` on stderr and stop every rank of the job (``COMM_WORLD.Abort``)."""
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    finally:
        comm = _STATE["comm"]
        if comm is None:
            os._exit(code)
        comm.Abort(code)


def _install_fault_handlers() -> None:
    previous_hook = sys.excepthook

    def excepthook(kind, value, tb):
        previous_hook(kind, value, tb)
        if issubclass(kind, DistributedError):  # raised by every rank together: no abort needed
            return
        abort(
            f"convscope: rank {rank()} of {size()} failed with {kind.__name__}: {value}; "
            f"stopping all {size()} processes"
        )

    sys.excepthook = excepthook

    def on_sigterm(signum, frame):
        abort(f"convscope: rank {rank()} of {size()} received SIGTERM; stopping all {size()} processes", 143)

    if _main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- collectives
def allreduce_sum_(buffer: np.ndarray) -> np.ndarray:
    """Sum a contiguous array over all ranks, in place (uppercase Allreduce)."""
    if not buffer.flags.c_contiguous:
        raise ValueError("allreduce_sum_: the buffer must be C-contiguous")
    comm = world()
    if comm.Get_size() > 1:
        comm.Allreduce(mpi().IN_PLACE, buffer, op=mpi().SUM)
    return buffer


def broadcast_(buffer: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite a contiguous array with root's, in place (uppercase Bcast)."""
    if not buffer.flags.c_contiguous:
        raise ValueError("broadcast_: the buffer must be C-contiguous")
    comm = world()
    if comm.Get_size() > 1:
        comm.Bcast(buffer, root=root)
    return buffer


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Root's picklable object on every rank (lowercase bcast: start-up only, never per step)."""
    comm = world()
    return obj if comm.Get_size() == 1 else comm.bcast(obj, root=root)


def allgather_object(obj: Any) -> list:
    """Every rank's object, in rank order (lowercase allgather: start-up only)."""
    comm = world()
    return [obj] if comm.Get_size() == 1 else comm.allgather(obj)


def broadcast_bytes(data: bytes | None, root: int = 0) -> bytes:
    """Root's byte string (e.g. a checkpoint file) on every rank, sent as one uint8 buffer."""
    comm = world()
    if comm.Get_size() == 1:
        return bytes(data or b"")
    length = np.array([len(data) if comm.Get_rank() == root and data is not None else 0], np.int64)
    broadcast_(length, root)
    buf = (
        np.frombuffer(data, np.uint8).copy()
        if comm.Get_rank() == root and data is not None
        else np.empty(int(length[0]), np.uint8)
    )
    broadcast_(buf, root)
    return buf.tobytes()
