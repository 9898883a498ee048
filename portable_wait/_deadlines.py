"""Request timeouts for one client: one event-loop timer for every request in flight, instead of one each.

aiohttp's ``ClientTimeout(total=...)`` arms a timer for every request: a ``TimerHandle`` pushed onto the event
loop's heap, then cancelled and later swept out of it. At thousands of requests a second that measured about
30 µs of CPU per request on our benchmark machine, an eighth of a whole poll (docs/performance.md, section 1).
`RequestDeadlines` keeps the deadlines of the requests in flight (by the task making each, in the order they
started) and checks them from one timer, which
runs only while a request is in flight, every ``timeout / TICKS`` seconds (between ``MIN_TICK``, 10 ms, and
``MAX_TICK``, 1 s). A request that overruns is cancelled within one tick of its deadline (with the default 30 s
timeout, at most 1 s late; with 0.1 s, at most 10 ms late), and the client reports it as the same "timed out"
`TransportError` as ever.

A cancellation from elsewhere (the caller's, the wait hub's) is never taken for a timeout: on Python 3.11+ the
task's cancel count tells them apart, as ``asyncio.timeout`` does. Python 3.10 has no cancel count, so there a
cancellation that arrives in the same event-loop iteration as the timeout is taken as the timeout, as it is by
aiohttp's own timer on 3.10.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["RequestDeadlines"]

TICKS = 16
"""The check runs this many times per timeout: a request is cancelled at most 1/16 of its timeout late (but see
``MIN_TICK``)."""

MIN_TICK = 0.01
"""Seconds: the most often the check runs, for very short timeouts."""

MAX_TICK = 1.0
"""Seconds: the least often the check runs, for long timeouts."""


class RequestDeadlines:
    """The deadlines of one client's requests in flight, checked by one timer.

    A request is known by the task that makes it: a task runs one request at a time. Every request has the same
    timeout, so the deadlines, kept in the order the requests started, are also in the order they fall due,
    and a check stops at the first one not yet due.

    Args:
        timeout: Seconds one request may take.
    """

    __slots__ = ("_active", "_fired", "_loop", "_tick", "_timer", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tick = min(MAX_TICK, max(MIN_TICK, timeout / TICKS))
        # task -> (deadline in loop time, the task's cancel count when its request started)
        self._active: dict[asyncio.Task[object], tuple[float, int]] = {}
        self._fired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._active)

    def start(self, loop: asyncio.AbstractEventLoop, now: float | None = None) -> asyncio.Task[object]:
        """Start timing a request made by the current task; pass the result to `finish` when it ends.

        Args:
            loop: The running loop.
            now: ``loop.time()``, if the caller has just read it.
        """
        task = asyncio.current_task(loop)
        if task is None:  # not reachable from a coroutine run by asyncio, which always runs in a task
            raise RuntimeError("a request must be made from an asyncio task")
        if task in self._active:
            raise RuntimeError("a task makes one request at a time")
        if now is None:
            now = loop.time()
        # Python 3.10 has no cancel count (Task.cancelling, Task.uncancel): see the module's docstring.
        if sys.version_info >= (3, 11):
            self._active[task] = (now + self.timeout, task.cancelling())
        else:
            self._active[task] = (now + self.timeout, 0)
        if self._timer is None:
            self._loop = loop
            self._timer = loop.call_later(self._tick, self._check)
        return task

    def finish(self, task: asyncio.Task[object]) -> None:
        """Stop timing a request (it answered, failed or was cancelled)."""
        self._active.pop(task, None)
        if self._fired:
            self._fired.discard(task)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """Return True if the `asyncio.CancelledError` being handled is this request's timeout, and consume it.

        Call it only while handling a CancelledError raised during the request. False means the cancellation
        came from elsewhere (alone or as well as the timeout): re-raise it.
        """
        if task not in self._fired:
            return False
        if sys.version_info < (3, 11):
            return True
        return task.uncancel() <= self._active[task][1]

    def close(self) -> None:
        """Stop the timer once no request is in flight (the client is closing).

        Requests still in flight keep their deadlines: closing the session aborts only those already connected,
        so one still connecting (or in a TLS handshake) would otherwise hang for the operating system's
        connect timeout (minutes). The timer stops itself at the first tick that finds none in flight.
        """
        if self._timer is not None and not self._active:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        active = self._active
        if not active:
            return  # started again by the next request
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = []
        for task, (at, _) in active.items():
            if at > now:
                break  # started later, so due later
            if task not in self._fired:
                due.append(task)
        for task in due:
            self._fired.add(task)
            task.cancel()
        self._timer = loop.call_later(self._tick, self._check)
