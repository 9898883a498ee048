"""Fan-out: wait on many workflows at once through one client.

One coroutine per waiter costs about 10 KiB (a task, its frames, a tenacity loop); at 100,000 waiters that is a
gigabyte. Fan-out therefore runs every wait from one `_Scheduler`: a heap of (due time, workflow) entries, one
dispatcher task that sleeps until the earliest is due, and at most ``max_concurrency`` worker tasks that poll
whatever is due. A waiter is then only its `WaitState` (about 0.3 KiB) and a heap entry. The decisions, when a
status is final, when a failure is ridden out, how long to pause, are the same `WaitState` methods that
`wait_for_completion` uses, so one workflow waited on alone or among thousands behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import sys
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

from ._errors import PortableError, WorkflowFailedError
from ._models import WorkflowStatus
from ._polling import WaitOptions, WaitState, _until
from ._validate import unique_workflow_ids

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = ["as_completed", "wait_for_many"]

Outcome = WorkflowStatus | PortableError


class _Scheduler:
    """Runs many waits with one heap of due polls and a few worker tasks."""

    def __init__(
        self,
        client: PortableClient,
        ids: list[int],
        options: WaitOptions,
        deliver: Callable[[int, Outcome | BaseException], None],
    ) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        # Started here, in the caller's context, so each wait's span is a child of the caller's span.
        self.telemetry = {wid: client._telemetry.wait_started(wid) for wid in ids}

        def record_and_deliver(wid: int, outcome: Outcome | BaseException) -> None:
            wait = self.telemetry.pop(wid, None)
            if wait is not None:
                wait.finished(outcome)
            deliver(wid, outcome)

        self.deliver = record_and_deliver
        now = self.loop.time()
        self.ready: asyncio.Queue[WaitState] = asyncio.Queue()
        for wid in ids:  # every first poll is due now; the workers take them in order
            self.ready.put_nowait(WaitState(wid, options, now))
        # (due, workflow ID, state): IDs are unique, so states are never compared.
        self.heap: list[tuple[float, int, WaitState]] = []
        self.wake = asyncio.Event()
        self.retry_after_cap = client.retry.retry_after_cap
        workers = max(1, min(len(ids), client.max_concurrency))
        self.tasks = [asyncio.ensure_future(self.worker()) for _ in range(workers)]
        self.tasks.append(asyncio.ensure_future(self.dispatch()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for wait in self.telemetry.values():
            wait.cancelled()
        self.telemetry.clear()

    async def dispatch(self) -> None:
        heap, wake = self.heap, self.wake
        while True:
            wake.clear()
            if not heap:
                await wake.wait()
                continue
            now = self.loop.time()
            due = heap[0][0]
            if due > now:
                # Sleep until the earliest poll is due, or until `schedule` adds an earlier one.
                handle = self.loop.call_at(due, wake.set)
                try:
                    await wake.wait()
                finally:
                    handle.cancel()
                continue
            while heap and heap[0][0] <= now:
                self.ready.put_nowait(heapq.heappop(heap)[2])

    def schedule(self, state: WaitState, delay: float) -> None:
        due = self.loop.time() + delay
        if not self.heap or due < self.heap[0][0]:
            self.wake.set()
        heapq.heappush(self.heap, (due, state.wid, state))

    async def worker(self) -> None:
        while True:
            state = await self.ready.get()
            try:
                await self.poll(state)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # a bug or an interrupt: surface it in the consumer, not in a lost task
                self.deliver(state.wid, error)

    async def poll(self, state: WaitState) -> None:
        loop = self.loop
        if state.deadline is not None and loop.time() >= state.deadline:
            self.deliver(state.wid, state.timed_out())
            return
        state.polls += 1
        try:
            with self.telemetry[state.wid].polling():
                status = await _until(state.deadline, self.client.get_workflow_status(state.wid))
        except TimeoutError:  # the deadline passed mid-request
            self.deliver(state.wid, state.timed_out())
            return
        except PortableError as error:
            now = loop.time()
            state.on_error(now)
            if state.ride_out(error, now):
                delay = state.next_delay(error, now, self.retry_after_cap)
                state.log_failed_poll(error, delay)
                await state.emit(now, None, delay, error)
                self.schedule(state, delay)
                return
            await state.emit(now, None, None, error)
            self.deliver(state.wid, error)
            return
        state.on_status(status)
        now = loop.time()
        if state.keep_polling(status):
            delay = state.next_delay(None, now, self.retry_after_cap)
            await state.emit(now, status, delay)
            self.schedule(state, delay)
            return
        await state.emit(now, status, None)
        try:
            outcome: Outcome = state.outcome(status)
        except WorkflowFailedError as failed:
            outcome = failed
        self.deliver(state.wid, outcome)


async def as_completed(
    client: PortableClient, workflow_ids: Iterable[int], **wait_kwargs: Any
) -> AsyncGenerator[tuple[int, WorkflowStatus | PortableError], None]:
    """Wait on many workflows concurrently; yield ``(workflow_id, outcome)`` as each one finishes.

    The outcome is the final `WorkflowStatus`, or the `PortableError` that ended that workflow's wait
    (`WorkflowFailedError`, `WaitTimeoutError`, an API or transport error): one workflow's failure never stops
    the others. Every ID is validated before any request; duplicates are waited on once. All waits share the
    client, so its ``max_concurrency``, connection pool and request budget bound the whole fan-out, however many
    IDs there are; first polls are taken in the order given, ``max_concurrency`` at a time.

    Leaving the loop early (``break``, an exception) cancels the waits still running once the generator is
    closed; close it promptly with ``contextlib.aclosing(as_completed(...))``.

    Args:
        client: An open `PortableClient`.
        workflow_ids: Positive ints.
        **wait_kwargs: ``timeout``, ``poll``, ``raise_on_failure``, ``after``, ``on_poll``, as for
            `wait_for_completion`; ``timeout`` applies to each workflow, all of which start together.
            An ``on_poll`` hook runs in the worker that polled, so a slow hook delays other polls: keep it quick.

    Raises:
        TypeError, ValueError: A bad ID or keyword, before any request.
    """
    ids = unique_workflow_ids(workflow_ids)
    options = WaitOptions.build(**wait_kwargs)
    async with contextlib.aclosing(_as_completed(client, ids, options)) as outcomes:
        async for item in outcomes:
            yield item


async def _as_completed(
    client: PortableClient, ids: list[int], options: WaitOptions
) -> AsyncGenerator[tuple[int, WorkflowStatus | PortableError], None]:
    """`as_completed` with validated arguments."""
    if not ids:
        return
    done: asyncio.Queue[tuple[int, Outcome | BaseException]] = asyncio.Queue()
    scheduler = _Scheduler(client, ids, options, lambda wid, outcome: done.put_nowait((wid, outcome)))
    try:
        for _ in range(len(ids)):
            wid, outcome = await done.get()
            if not isinstance(outcome, (WorkflowStatus, PortableError)):
                raise outcome
            yield wid, outcome
    finally:
        await scheduler.close()


@overload
async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: Literal[False] = False,
    **wait_kwargs: Any,
) -> dict[int, WorkflowStatus]: ...


@overload
async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: Literal[True],
    **wait_kwargs: Any,
) -> dict[int, WorkflowStatus | PortableError]: ...


async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: bool = False,
    **wait_kwargs: Any,
) -> dict[int, WorkflowStatus] | dict[int, WorkflowStatus | PortableError]:
    """Wait on many workflows concurrently and return every outcome, keyed by ID in the order given.

    Every ID gets an entry; duplicates are waited on once. It always waits for all of them, so one failure does
    not abandon the rest.

    Args:
        client: An open `PortableClient`.
        workflow_ids: Positive ints.
        return_exceptions: If True, a workflow whose wait ended in a `PortableError` has that error as its
            value. If False (the default), the errors are raised together once all waits are over.
        **wait_kwargs: As for `wait_for_completion`.

    Returns:
        ``{workflow_id: WorkflowStatus}`` (or ``WorkflowStatus | PortableError`` with ``return_exceptions``).

    Raises:
        ExceptionGroup: Without ``return_exceptions``, when any wait failed; it holds every failure
            (`WorkflowFailedError`, `WaitTimeoutError`, API and transport errors), each with ``.workflow_id``.
            Use ``return_exceptions=True`` to also get the successes.
        TypeError, ValueError: A bad ID or keyword, before any request.
    """
    if not isinstance(return_exceptions, bool):
        raise TypeError(f"return_exceptions must be a bool, got {type(return_exceptions).__name__}")
    ids = unique_workflow_ids(workflow_ids)
    options = WaitOptions.build(**wait_kwargs)
    outcomes: dict[int, Outcome] = {}
    async with contextlib.aclosing(_as_completed(client, ids, options)) as results:
        async for wid, outcome in results:
            outcomes[wid] = outcome
    ordered = {wid: outcomes[wid] for wid in ids}
    if return_exceptions:
        return ordered
    failures = [o for o in ordered.values() if isinstance(o, PortableError)]
    if failures:
        raise ExceptionGroup(f"{len(failures)} of {len(ordered)} workflows did not succeed", failures)
    return {wid: o for wid, o in ordered.items() if isinstance(o, WorkflowStatus)}
