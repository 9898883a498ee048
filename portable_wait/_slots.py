"""The client's request slots: at most ``max_concurrency`` requests in flight, first come, first served.

`Slots` does what an ``asyncio.Semaphore`` does for the client, with a cheaper common case: every request takes a
slot, and when one is free, `Slots.try_take` takes it without a coroutine, a context manager or a future (an
``async with semaphore`` measured about 1.5 µs a request, this module's reason to be). When none is free,
`Slots.take` queues the caller; a slot given back goes straight to the longest-waiting caller, so a newcomer
never overtakes the queue.

A caller cancelled while queued leaves the queue; one cancelled just after it was handed a slot, before it could
run, hands the slot on. Either way no slot is lost and nobody is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

__all__ = ["Slots"]


class Slots:
    """At most ``limit`` holders at once; the others queue in order of arrival.

    Take a slot with ``if not slots.try_take(): await slots.take()``, and give it back with `give` (in a
    ``finally``) once the request is over.

    Args:
        limit: How many slots there are (at least 1).
    """

    __slots__ = ("_queue", "free")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.free = limit
        self._queue: deque[asyncio.Future[None]] = deque()

    def queued(self) -> int:
        """Return how many callers are queued for a slot."""
        return sum(1 for waiter in self._queue if not waiter.done())

    def try_take(self) -> bool:
        """Take a slot now if one is free; return whether one was taken.

        A slot is never free while callers are queued (`give` hands it to the first of them instead), so this
        never overtakes the queue.
        """
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, queueing behind earlier callers until one is given back."""
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as it was cancelled: hand it on
            else:
                with contextlib.suppress(ValueError):  # already dropped by give()
                    self._queue.remove(waiter)
            raise

    def give(self) -> None:
        """Give a slot back: to the longest-waiting caller still queued, else to the free ones."""
        queue = self._queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done():  # skip callers cancelled while queued
                waiter.set_result(None)
                return
        self.free += 1
