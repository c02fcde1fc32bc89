"""Run a command's body as one rank of an MPI job, turning failures into job-wide stops.

A failure every rank shares (:class:`DistributedError`: bad launch, mismatched settings, a rank
without data) is reported once, by rank 0, and every rank exits with status 1. Any other error
is this rank's alone while the others may be waiting in a collective: it is printed with the
rank and ``COMM_WORLD.Abort`` stops the whole job.
"""

from __future__ import annotations

import sys
import traceback

from . import comm


def run_distributed(args, body) -> int:
    """``body(args, DistributedRun)`` on this rank; returns its exit status.

    Raises:
        ValueError: not started by an MPI launcher (the message says how to launch).
    """
    from .training import DistributedRun

    try:
        dist = DistributedRun(sync_bn=args.sync_bn)
    except comm.DistributedError as e:
        raise ValueError(str(e)) from None
    try:
        return body(args, dist)
    except comm.DistributedError as e:
        if dist.is_writer:
            print(f"convscope {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BaseException as e:  # noqa: BLE001 - one rank's failure must stop all of them
        if getattr(args, "debug", False):
            traceback.print_exc()
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        comm.abort(
            f"convscope {args.command}: error on rank {dist.rank} of {dist.size}: {text}; "
            f"stopping all {dist.size} processes"
        )
        return 1
