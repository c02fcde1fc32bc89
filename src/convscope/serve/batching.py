"""Dynamic batching: predict requests that arrive within a few milliseconds run as one batch.

Requests wait in a bounded queue (a full queue answers 503 instead of growing without
bound). One collector task takes the oldest request, keeps taking requests for up to
``max_wait`` seconds while the batch stays within ``max_batch`` images, runs the model once
in a worker thread and hands each request its rows. ``max_batch=1`` switches batching off
(each request runs alone, in arrival order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from .errors import busy


class Batcher:
    """Collects (N_i, C, H, W) inputs into batches of at most ``max_batch`` images.

    Args:
        run (callable): ``run(x, wait=True)``: (N, C, H, W) array -> (N, K) array; with
            ``wait=False`` it returns None instead of waiting for a busy model.
        max_batch (int, default 32): images per model call (a larger single request runs alone).
        max_wait (float, default 0.005): seconds to wait for more requests after the first.
        max_queue (int, default 512): requests waiting before new ones get a 503.
        on_batch (callable, optional): called with each batch's image count (metrics).
        inline (bool, default True): run a batch in the event loop's thread when the model is
            free (else in a worker thread). A worker thread next to the busy event loop spends
            most of its time waiting for the GIL between NumPy calls (the "convoy" effect);
            inline, the loop parses new requests while nothing runs and they form the next batch.
    """

    def __init__(
        self,
        run: Callable[..., np.ndarray | None],
        max_batch: int = 32,
        max_wait: float = 0.005,
        max_queue: int = 512,
        on_batch: Callable[[int], None] | None = None,
        inline: bool = True,
    ):
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch and max_queue must be >= 1, got {max_batch} and {max_queue}")
        self.run, self.max_batch, self.max_wait = run, int(max_batch), float(max_wait)
        self.max_queue = int(max_queue)
        self.on_batch = on_batch
        self.inline = bool(inline)
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    def _started_queue(self) -> asyncio.Queue:
        if self.queue is None:
            raise RuntimeError("the batcher is not started: call start() inside the running event loop")
        return self.queue

    def start(self) -> None:
        self.queue = asyncio.Queue(self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Queue ``x`` (N, C, H, W) and wait for its (N, K) result; 503 when the queue is full."""
        if self.queue is None:
            self.start()
        queue = self._started_queue()
        future = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait((x, future))
        except asyncio.QueueFull:
            raise busy(
                f"the prediction queue is full ({self.max_queue} requests waiting); retry shortly"
            ) from None
        return await future

    async def _loop(self) -> None:
        queue = self._started_queue()
        loop = asyncio.get_running_loop()
        pending: tuple | None = None
        while True:
            first = pending if pending is not None else await queue.get()
            pending = None
            items, count = [first], len(first[0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0 and queue.empty():
                    break
                try:
                    item = (
                        queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout)
                    )
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if count + len(item[0]) > self.max_batch:
                    pending = item  # starts the next batch
                    break
                items.append(item)
                count += len(item[0])
            items = [it for it in items if not it[1].done()]  # timed-out requests are skipped
            if not items:
                continue
            batch = np.concatenate([x for x, _ in items]) if len(items) > 1 else items[0][0]
            try:
                out = self.run(batch, False) if self.inline else None  # None: the model is busy
                if out is None:
                    out = await loop.run_in_executor(None, self.run, batch)
                if out is None:
                    raise RuntimeError("the model returned no result")
            except Exception as e:  # the model failed: every waiting request hears why
                for _, f in items:
                    if not f.done():
                        f.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            start = 0
            for x, f in items:
                if not f.done():
                    f.set_result(out[start : start + len(x)])
                start += len(x)
