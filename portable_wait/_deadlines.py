"""Request timeouts for one client: one event-loop timer for every request in flight, instead of one each.

aiohttp's ``ClientTimeout(total=...)`` arms a timer for every request: a ``TimerHandle`` pushed onto the event
loop's heap, then cancelled and later swept out of it. At thousands of requests a second that measured about
30 µs of CPU per request on our benchmark machine, an eighth of a whole poll (docs/performance.md, section 1).
`RequestDeadlines` keeps the deadlines of the requests in flight in a set and checks them from one timer, which
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

__all__ = ["RequestDeadlines"]

TICKS = 16
"""The check runs this many times per timeout: a request is cancelled at most 1/16 of its timeout late (but see
``MIN_TICK``)."""

MIN_TICK = 0.01
"""Seconds: the most often the check runs, for very short timeouts."""

MAX_TICK = 1.0
"""Seconds: the least often the check runs, for long timeouts."""


class Deadline:
    """One request's deadline; see `RequestDeadlines.start`."""

    __slots__ = ("at", "cancelling", "fired", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task = task
        self.at = at
        self.fired = False
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        self.cancelling = cancelling() if cancelling is not None else 0


class RequestDeadlines:
    """The deadlines of one client's requests in flight, checked by one timer.

    Args:
        timeout: Seconds one request may take.
    """

    __slots__ = ("_active", "_loop", "_tick", "_timer", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tick = min(MAX_TICK, max(MIN_TICK, timeout / TICKS))
        self._active: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._active)

    def start(self, loop: asyncio.AbstractEventLoop) -> Deadline:
        """Start timing a request made by the current task; pass the result to `finish` when it ends."""
        task = asyncio.current_task(loop)
        if task is None:  # not reachable from a coroutine run by asyncio, which always runs in a task
            raise RuntimeError("a request must be made from an asyncio task")
        deadline = Deadline(task, loop.time() + self.timeout)
        self._active.add(deadline)
        if self._timer is None:
            self._loop = loop
            self._timer = loop.call_later(self._tick, self._check)
        return deadline

    def finish(self, deadline: Deadline) -> None:
        """Stop timing a request (it answered, failed or was cancelled)."""
        self._active.discard(deadline)

    def expired(self, deadline: Deadline) -> bool:
        """Return True if the `asyncio.CancelledError` being handled is this deadline's, and consume it.

        Call it only while handling a CancelledError raised during the request. False means the cancellation
        came from elsewhere (alone or as well as the timeout): re-raise it.
        """
        if not deadline.fired:
            return False
        uncancel = getattr(deadline.task, "uncancel", None)  # Python 3.11+
        if uncancel is None:
            return True
        return bool(uncancel() <= deadline.cancelling)

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
        for deadline in [d for d in active if d.at <= now and not d.fired]:
            deadline.fired = True
            deadline.task.cancel()
        self._timer = loop.call_later(self._tick, self._check)
