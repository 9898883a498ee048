"""One suite of wait semantics, run through every entry point: `wait_for_completion`, `wait_for_many([id])` and
`as_completed([id])`. They all enroll in the client's hub, and these tests hold them to the same behaviour:
``after``, deadlines (mid-pause and mid-request), outage ride-through and give-up, Retry-After in the poll
schedule, cancellation mid-pause and mid-request, and hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from portable_wait import (
    AuthenticationError,
    Disposition,
    InvalidResponseError,
    Lifecycle,
    PermissionDeniedError,
    PollEvent,
    PollPolicy,
    PortableAPIError,
    PortableClient,
    PortableError,
    RetryPolicy,
    TransportError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowStatus,
    as_completed,
    wait_for_completion,
    wait_for_many,
)
from portable_wait.testing import FAST_POLL, FakePortable

Wait = Callable[..., Coroutine[Any, Any, WorkflowStatus]]


async def via_wait_for_completion(client: PortableClient, wid: int, **kwargs: Any) -> WorkflowStatus:
    return await wait_for_completion(client, wid, **kwargs)


async def via_wait_for_many(client: PortableClient, wid: int, **kwargs: Any) -> WorkflowStatus:
    outcome = (await wait_for_many(client, [wid], return_exceptions=True, **kwargs))[wid]
    if isinstance(outcome, PortableError):
        raise outcome
    return outcome


async def via_as_completed(client: PortableClient, wid: int, **kwargs: Any) -> WorkflowStatus:
    async with contextlib.aclosing(as_completed(client, [wid], **kwargs)) as results:
        async for got, outcome in results:
            assert got == wid
            if isinstance(outcome, PortableError):
                raise outcome
            return outcome
    raise AssertionError("as_completed ended without an outcome")


@pytest.fixture(params=[via_wait_for_completion, via_wait_for_many, via_as_completed], ids=lambda f: f.__name__[4:])
def wait(request: pytest.FixtureRequest) -> Wait:
    fn: Wait = request.param
    return fn


FAST_RETRY_2 = RetryPolicy(attempts=2, initial=0.001, maximum=0.002)


async def assert_nothing_left(client: PortableClient, fake: FakePortable) -> None:
    """The wait is gone: no stream in the hub, no request in flight, and no poll after it."""
    await asyncio.sleep(0.05)  # a request cancelled in flight may still reach the server's log
    assert client._wait_hub().streams() == {}
    assert client._in_flight == 0
    count = len(fake.requests)
    await asyncio.sleep(0.15)
    assert len(fake.requests) == count
    # Nothing of the wait outlives it: no task of its own (with filterwarnings=error, no "Unclosed" warning).
    gc.collect()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not any(name in repr(t) for t in others for name in ("wait_for_completion", "wait_for_many", "as_completed"))


async def test_semantics_returns_the_final_status(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    # Phases long enough that a loaded machine, which can hold a process off the CPU for 50 ms, still polls
    # in each (the first poll used to miss a 50 ms PENDING about once in a hundred runs).
    fake_portable.add_workflow(1, pending=0.3, running=0.3, resources={"users": 10})
    status = await wait(portable_client, 1, poll=FAST_POLL)
    assert status.disposition is Disposition.SUCCEEDED and status.records_loaded == 10
    assert status.lifecycle is Lifecycle.NOT_RUNNING and status.completed_at is not None
    seen = [r.lifecycle for r in fake_portable.requests_for(1)]
    assert seen[0] == "PENDING" and "RUNNING" in seen and seen[-1] == "NOT_RUNNING"


async def test_semantics_failed_run_raises_or_returns(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(2, running=0.05, outcome="FAILED", errors=["warehouse suspended"])
    with pytest.raises(WorkflowFailedError, match="warehouse suspended") as info:
        await wait(portable_client, 2, poll=FAST_POLL)
    assert info.value.workflow_id == 2 and info.value.status.disposition is Disposition.FAILED
    status = await wait(portable_client, 2, poll=FAST_POLL, raise_on_failure=False)
    assert status.disposition is Disposition.FAILED and status.errors == ("warehouse suspended",)


async def test_semantics_after_ignores_the_previous_run(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(5, start=False, previous="SUCCEEDED")
    triggered = datetime.now(timezone.utc)

    async def trigger_later() -> None:
        await asyncio.sleep(0.15)
        fake_portable.trigger(5, running=0.1, outcome="FAILED", errors=["new run failed"])

    trigger = asyncio.create_task(trigger_later())
    with pytest.raises(WorkflowFailedError, match="new run failed"):
        await wait(portable_client, 5, poll=FAST_POLL, after=triggered)
    await trigger
    fake_portable.add_workflow(6, start=False, previous="SUCCEEDED")
    stale = await wait(portable_client, 6, poll=FAST_POLL)  # without after=, the stale result is final
    assert stale.disposition is Disposition.SUCCEEDED


async def test_semantics_after_accepts_a_run_completed_after_it(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    fake_portable.add_workflow(7, start=False, previous="SUCCEEDED", previous_completed_at=datetime.now(timezone.utc))
    status = await wait(portable_client, 7, poll=FAST_POLL, after=before)
    assert status.disposition is Disposition.SUCCEEDED
    assert len(fake_portable.requests_for(7)) == 1


async def test_semantics_after_with_no_new_run_times_out(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(9, start=False, previous="SUCCEEDED")
    with pytest.raises(WaitTimeoutError) as info:
        await wait(portable_client, 9, poll=FAST_POLL, after=datetime.now(timezone.utc), timeout=0.2)
    assert len(fake_portable.requests_for(9)) > 2
    assert info.value.last_status is not None and info.value.last_status.lifecycle is Lifecycle.NOT_RUNNING


async def test_semantics_deadline_fires_mid_pause(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(4, running=60, resources={"users": 3})
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(WaitTimeoutError) as info:
        await wait(portable_client, 4, timeout=0.3, poll=PollPolicy(initial=5, maximum=5))
    assert 0.29 <= loop.time() - start < 1.5  # a 5 s pause would end at 5 s
    assert isinstance(info.value, TimeoutError) and info.value.workflow_id == 4
    last = info.value.last_status  # rebuilt from the stream's last body
    assert last is not None and last.lifecycle is Lifecycle.RUNNING and last.id == 4
    assert [r.name for r in last.resources] == ["users"]
    await assert_nothing_left(portable_client, fake_portable)


async def test_semantics_deadline_fires_mid_request(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(4, running=60)
    fake_portable.add_fault("slow", delay=5)
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError) as info:
        await wait(portable_client, 4, timeout=0.2, poll=FAST_POLL)
    assert time.monotonic() - start < 1.5
    assert info.value.last_status is None
    await assert_nothing_left(portable_client, fake_portable)


async def test_semantics_rides_out_an_outage(wait: Wait, fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(13, running=0.6)
    fake_portable.outage(0.05, 0.4)
    events: list[PollEvent] = []
    async with fake_portable.client(retry=FAST_RETRY_2) as client:
        status = await wait(client, 13, poll=FAST_POLL, on_poll=events.append)
    assert status.disposition is Disposition.SUCCEEDED
    failed = [e for e in events if e.error is not None]
    assert failed and all(e.status is None and isinstance(e.error, PortableAPIError) for e in failed)
    assert all(e.next_delay is not None for e in failed)
    assert any(r.status == 503 for r in fake_portable.requests)


async def test_semantics_gives_up_after_outage_tolerance(wait: Wait, fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(14, running=60)
    fake_portable.add_fault("drop")
    policy = PollPolicy(initial=0.01, maximum=0.02, outage_tolerance=0.2)
    events: list[PollEvent] = []
    start = time.monotonic()
    async with fake_portable.client(retry=FAST_RETRY_2) as client:
        with pytest.raises(TransportError):
            await wait(client, 14, poll=policy, on_poll=events.append)
    assert 0.2 <= time.monotonic() - start < 2
    assert events[-1].next_delay is None and isinstance(events[-1].error, TransportError)


async def test_semantics_outage_tolerance_zero_raises_the_first_failed_poll(
    wait: Wait, fake_portable: FakePortable
) -> None:
    fake_portable.add_workflow(15, running=60)
    fake_portable.add_fault("503")
    async with fake_portable.client(retry=FAST_RETRY_2) as client:
        with pytest.raises(PortableAPIError) as info:
            await wait(client, 15, poll=PollPolicy(initial=0.01, maximum=0.01, outage_tolerance=0))
    assert info.value.status_code == 503
    assert len(fake_portable.requests) == 2  # the client's two attempts; the poll loop added none


async def test_semantics_poll_schedule_honours_retry_after(wait: Wait, fake_portable: FakePortable) -> None:
    """A 503 with Retry-After (no client-wide 429 pause involved): the next poll is no sooner than asked."""
    fake_portable.add_workflow(16, running=0.05)
    fake_portable.add_fault("503", retry_after=0.3, times=1)
    async with fake_portable.client(retry=RetryPolicy(attempts=1)) as client:
        await wait(client, 16, poll=FAST_POLL)
    times = [r.time for r in fake_portable.requests]
    assert fake_portable.requests[0].status == 503
    assert times[1] - times[0] >= 0.29


async def test_semantics_retry_after_is_capped_by_the_client(wait: Wait, fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(16, running=0.05)
    fake_portable.add_fault("503", retry_after=3600, times=1)
    async with fake_portable.client(retry=RetryPolicy(attempts=1, retry_after_cap=0.2)) as client:
        start = time.monotonic()
        await wait(client, 16, poll=FAST_POLL)
    assert time.monotonic() - start < 2
    times = [r.time for r in fake_portable.requests]
    assert times[1] - times[0] >= 0.19


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("forbidden", PermissionDeniedError),
        ("missing", WorkflowNotFoundError),
        ("badkey", AuthenticationError),
        ("invalid", InvalidResponseError),
    ],
)
async def test_semantics_permanent_errors_raise_at_once(
    wait: Wait, fake_portable: FakePortable, setup: str, error: type[Exception]
) -> None:
    fake_portable.add_workflow(12, running=60, forbidden=setup == "forbidden")
    if setup == "invalid":
        fake_portable.add_fault("invalid")
    key = "wrong-key" if setup == "badkey" else fake_portable.api_key
    wid = 404 if setup == "missing" else 12
    async with PortableClient(key, base_url=fake_portable.base_url) as client:
        with pytest.raises(error):
            await wait(client, wid, poll=FAST_POLL)
    assert len(fake_portable.requests) == 1


async def test_semantics_cancellation_is_prompt_mid_pause(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(20, running=60)
    task = asyncio.create_task(wait(portable_client, 20, poll=PollPolicy(initial=30, maximum=30)))
    while not fake_portable.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 0.5
    await assert_nothing_left(portable_client, fake_portable)


async def test_semantics_cancellation_is_prompt_mid_request(wait: Wait, fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(21, running=60)
    fake_portable.add_fault("slow", delay=30)
    async with fake_portable.client() as client:
        task = asyncio.create_task(wait(client, 21, poll=FAST_POLL))
        while fake_portable.in_flight == 0:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - start < 0.5
        await assert_nothing_left(client, fake_portable)
        # The hub's worker that carried the cancelled request is still serving: a new wait gets answers.
        fake_portable.faults.clear()
        fake_portable.add_workflow(22, running=0.05)
        assert (await wait(client, 22, poll=FAST_POLL)).disposition is Disposition.SUCCEEDED


async def test_semantics_hooks_sync_and_async(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(17, running=0.1)
    sync_events: list[PollEvent] = []
    async_events: list[PollEvent] = []

    async def async_hook(event: PollEvent) -> None:
        await asyncio.sleep(0)
        async_events.append(event)

    await wait(portable_client, 17, poll=FAST_POLL, on_poll=sync_events.append)
    fake_portable.trigger(17, running=0.1)
    await wait(portable_client, 17, poll=FAST_POLL, on_poll=async_hook)
    for events in (sync_events, async_events):
        assert len(events) >= 2
        assert [e.attempt for e in events] == list(range(1, len(events) + 1))
        assert all(e.workflow_id == 17 for e in events)
        assert all(e.next_delay is not None and 0 <= e.next_delay <= FAST_POLL.maximum for e in events[:-1])
        assert events[-1].next_delay is None
        last = events[-1].status
        assert last is not None and last.lifecycle is Lifecycle.NOT_RUNNING
        assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)


async def test_semantics_hook_exceptions_are_logged_not_raised(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake_portable.add_workflow(18, running=0.05)

    def broken(event: PollEvent) -> None:
        raise RuntimeError("hook bug")

    status = await wait(portable_client, 18, poll=FAST_POLL, on_poll=broken)
    assert status.disposition is Disposition.SUCCEEDED
    assert any("on_poll hook raised" in r.getMessage() for r in caplog.records)


async def test_semantics_logs_each_poll_at_debug(
    wait: Wait, fake_portable: FakePortable, portable_client: PortableClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="portable_wait")
    fake_portable.add_workflow(19, running=0.05)
    await wait(portable_client, 19, poll=FAST_POLL)
    polls = [r for r in caplog.records if r.levelno == logging.DEBUG and "workflow 19 poll" in r.getMessage()]
    assert len(polls) == len(fake_portable.requests_for(19))


async def test_semantics_closing_the_client_ends_the_wait(wait: Wait, fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(23, running=60)
    client = fake_portable.client()
    async with client:
        task = asyncio.create_task(wait(client, 23, poll=FAST_POLL))
        while not fake_portable.requests:
            await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="closed"):
        await task
    with pytest.raises(RuntimeError, match="closed"):
        await wait(client, 23, poll=FAST_POLL)
