"""Type-checked by mypy --strict, never run: the public API as users write it must type-check."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

import portable_wait
from portable_wait import (
    ClientStats,
    Disposition,
    Lifecycle,
    Outcome,
    PollEvent,
    PollPolicy,
    PortableClient,
    PortableError,
    RetryPolicy,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowStatus,
    as_completed,
    sync,
    wait_for_completion,
    wait_for_many,
)


def hook(event: PollEvent) -> None:
    status: WorkflowStatus | None = event.status
    delay: float | None = event.next_delay
    print(status, delay, event.elapsed, event.attempt, event.workflow_id, event.error)


async def ahook(event: PollEvent) -> None:
    print(event)


async def usage() -> None:
    async with PortableClient("key", retry=RetryPolicy(attempts=2), max_concurrency=5, rate_limit=10.0) as client:
        one: WorkflowStatus = await client.get_workflow_status(1)
        done: WorkflowStatus = await wait_for_completion(
            client, 1, timeout=60, poll=PollPolicy(initial=1), after=datetime.now(timezone.utc), on_poll=hook
        )
        await wait_for_completion(client, 1, on_poll=ahook, raise_on_failure=False)
        statuses: dict[int, WorkflowStatus] = await wait_for_many(client, [1, 2])
        mixed: dict[int, WorkflowStatus | PortableError] = await wait_for_many(client, [1, 2], return_exceptions=True)
        outcomes: dict[int, Outcome] = await wait_for_many(client, [1], return_exceptions=True, after=None)
        # The wait keywords are declared once (WaitKwargs): a typo is a type error (warn_unused_ignores proves it).
        await wait_for_many(client, [1], timout=5)  # type: ignore[call-overload]
        async for _, either in as_completed(client, [1], poll=PollPolicy(), raise_on_failure=False):
            print(either, outcomes)
        async with contextlib.aclosing(as_completed(client, [1, 2], timeout=5)) as results:
            async for wid, outcome in results:
                ident: int = wid
                if isinstance(outcome, WorkflowFailedError):
                    failed: WorkflowStatus = outcome.status
                elif isinstance(outcome, WaitTimeoutError):
                    last: WorkflowStatus | None = outcome.last_status
        stats: ClientStats = client.stats()
        by_status: int = stats.requests_by_status.get(429, 0) + stats.requests_by_status.get("timeout", 0)
        lag: float | None = stats.detection_lag_mean
        print(stats.requests, stats.retries, stats.rate_limited, stats.waits_active, stats.waits_done, by_status, lag)
        lifecycle: Lifecycle = one.lifecycle
        disposition: Disposition = done.disposition
        print(statuses, mixed, lifecycle, disposition, ident, failed, last, portable_wait.__version__)


def blocking() -> None:
    status: WorkflowStatus = sync.wait_for_completion(1, api_key="k", timeout=10)
    many: dict[int, WorkflowStatus] = sync.wait_for_many([1, 2])
    sync.wait_for_completion(1, timout=10)  # type: ignore[call-arg]
    mixed: dict[int, WorkflowStatus | PortableError] = sync.wait_for_many([1], return_exceptions=True)
    print(status, many, mixed)


async def first_contact_and_clock() -> None:
    async with PortableClient("key", first_contact_timeout=10.0) as client:
        limit: float | None = client.first_contact_timeout
        offset: float = client.server_clock.estimate().offset
        try:
            await wait_for_completion(client, 1, after=datetime.now(timezone.utc), timeout=60)
        except WaitTimeoutError as error:
            after: datetime | None = error.after
            print(after)
        except portable_wait.TransportError as error:
            transient: bool = error.transient
            print(transient)
        print(limit, offset)
