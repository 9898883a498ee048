"""RequestDeadlines: one timer for every request's timeout, telling its own cancellation from anyone else's."""

from __future__ import annotations

import asyncio
import sys

import pytest

from portable_wait._deadlines import MAX_TICK, MIN_TICK, RequestDeadlines


async def _request(deadlines: RequestDeadlines, started: asyncio.Event) -> str:
    """Stand in for one request: wait forever, then say how it ended."""
    loop = asyncio.get_running_loop()
    deadline = deadlines.start(loop)
    try:
        started.set()
        await loop.create_future()
    except asyncio.CancelledError:
        if not deadlines.expired(deadline):
            raise
        return "timed out"
    finally:
        deadlines.finish(deadline)
    return "answered"  # pragma: no cover - the future never completes


async def test_deadlines_cancel_an_overdue_request_as_a_timeout() -> None:
    deadlines = RequestDeadlines(0.05)
    started = asyncio.Event()
    task = asyncio.create_task(_request(deadlines, started))
    assert await asyncio.wait_for(task, 5) == "timed out"
    assert len(deadlines) == 0
    if sys.version_info >= (3, 11):
        assert task.cancelling() == 0  # our cancellation was consumed: nothing leaks to an outer timeout


async def test_deadlines_pass_on_a_cancellation_from_elsewhere() -> None:
    deadlines = RequestDeadlines(30.0)
    started = asyncio.Event()
    task = asyncio.create_task(_request(deadlines, started))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 has no cancel count to tell the two apart")
async def test_deadlines_pass_on_a_cancellation_that_comes_with_the_timeout() -> None:
    deadlines = RequestDeadlines(30.0)
    started = asyncio.Event()
    task = asyncio.create_task(_request(deadlines, started))
    await started.wait()
    _, count = deadlines._active[task]  # a request is known by its task
    deadlines._active[task] = (0.0, count)  # overdue now
    deadlines._check()  # the timeout fires...
    task.cancel()  # ...and the caller cancels in the same loop iteration
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()


async def test_deadlines_timer_runs_only_while_requests_are_in_flight() -> None:
    deadlines = RequestDeadlines(0.2)  # ticks every MIN_TICK-bounded 12.5 ms
    loop = asyncio.get_running_loop()
    assert deadlines._timer is None
    deadline = deadlines.start(loop)
    assert deadlines._timer is not None
    deadlines.finish(deadline)
    await asyncio.sleep(0.1)  # the next tick finds nothing in flight and stops
    assert deadlines._timer is None


def test_deadlines_tick_is_a_sixteenth_of_the_timeout_within_bounds() -> None:
    assert RequestDeadlines(30.0)._tick == MAX_TICK
    assert RequestDeadlines(0.001)._tick == MIN_TICK
    assert RequestDeadlines(1.6)._tick == pytest.approx(0.1)


async def test_deadlines_fire_only_the_requests_that_are_due() -> None:
    # Deadlines are kept in the order requests started, which is the order they fall due: a check stops at the
    # first one not yet due, and must still fire every one that is.
    deadlines = RequestDeadlines(30.0)
    events = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(_request(deadlines, event)) for event in events]
    for event in events:
        await event.wait()
    for task in tasks[:2]:
        deadlines._active[task] = (0.0, deadlines._active[task][1])  # the two oldest are overdue
    deadlines._check()
    assert await asyncio.wait_for(tasks[0], 1) == "timed out"
    assert await asyncio.wait_for(tasks[1], 1) == "timed out"
    assert not tasks[2].done() and len(deadlines) == 1
    tasks[2].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[2]
    assert len(deadlines) == 0
    deadlines.close()


async def test_deadlines_know_a_request_by_its_task() -> None:
    deadlines = RequestDeadlines(30.0)
    loop = asyncio.get_running_loop()
    token = deadlines.start(loop)
    with pytest.raises(RuntimeError, match="one request at a time"):
        deadlines.start(loop)
    deadlines.finish(token)
    deadlines.finish(deadlines.start(loop))  # free again once finished
    deadlines.close()
