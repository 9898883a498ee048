"""wait_for_completion against the fake Portable server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import datetime, timedelta, timezone

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
    RetryPolicy,
    TransportError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    wait_for_completion,
)
from portable_wait.testing import FAST_POLL, FakePortable


async def test_wait_returns_final_status(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(1, pending=0.05, running=0.15, resources={"users": 10})
    status = await wait_for_completion(portable_client, 1, poll=FAST_POLL)
    assert status.lifecycle is Lifecycle.NOT_RUNNING
    assert status.disposition is Disposition.SUCCEEDED
    assert status.completed_at is not None
    assert status.records_loaded == 10
    seen = [r.lifecycle for r in fake_portable.requests_for(1)]
    assert seen[0] == "PENDING" and "RUNNING" in seen and seen[-1] == "NOT_RUNNING"


async def test_wait_accepts_lowercase_answers(portable_client: PortableClient, fake_portable: FakePortable) -> None:
    fake_portable.lowercase = True
    fake_portable.add_workflow(1, running=0.05)
    status = await wait_for_completion(portable_client, 1, poll=FAST_POLL)
    assert status.disposition is Disposition.SUCCEEDED


async def test_wait_raises_on_failed_with_errors(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(2, running=0.05, outcome="FAILED", errors=["Snowflake: warehouse suspended"])
    with pytest.raises(WorkflowFailedError) as info:
        await wait_for_completion(portable_client, 2, poll=FAST_POLL)
    assert info.value.workflow_id == 2
    assert info.value.status.disposition is Disposition.FAILED
    assert "Snowflake: warehouse suspended" in str(info.value)


async def test_wait_returns_failed_status_when_asked(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(2, running=0.05, outcome="FAILED", errors=["boom"])
    status = await wait_for_completion(portable_client, 2, poll=FAST_POLL, raise_on_failure=False)
    assert status.disposition is Disposition.FAILED
    assert status.errors == ("boom",)


async def test_wait_never_ran_returns_none_disposition(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(3, start=False)
    status = await wait_for_completion(portable_client, 3, poll=FAST_POLL)
    assert status.disposition is Disposition.NONE
    assert len(fake_portable.requests) == 1


async def test_wait_timeout_fires_at_the_deadline_not_a_poll_later(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(4, running=60)
    slow = PollPolicy(initial=5, maximum=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(WaitTimeoutError) as info:
        await wait_for_completion(portable_client, 4, timeout=0.3, poll=slow)
    took = loop.time() - start
    assert 0.29 <= took < 1.5  # a 5 s poll interval would end at 5 s without clipping
    assert isinstance(info.value, TimeoutError)
    assert info.value.workflow_id == 4
    assert info.value.last_status is not None
    assert info.value.last_status.lifecycle is Lifecycle.RUNNING


async def test_wait_timeout_interrupts_a_slow_request(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(4, running=60)
    fake_portable.add_fault("slow", delay=5)
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError) as info:
        await wait_for_completion(portable_client, 4, timeout=0.2, poll=FAST_POLL)
    assert time.monotonic() - start < 1.5
    assert info.value.last_status is None


async def test_wait_after_ignores_the_previous_run(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """The bug of hand-written loops: right after a trigger, the endpoint still shows the last run's result."""
    fake_portable.add_workflow(5, start=False, previous="SUCCEEDED")
    triggered = datetime.now(timezone.utc)

    async def trigger_later() -> None:
        await asyncio.sleep(0.15)
        fake_portable.trigger(5, running=0.1, outcome="FAILED", errors=["new run failed"])

    trigger = asyncio.create_task(trigger_later())
    with pytest.raises(WorkflowFailedError, match="new run failed"):
        await wait_for_completion(portable_client, 5, poll=FAST_POLL, after=triggered)
    await trigger
    # Without after=, the same situation returns the stale result at once.
    fake_portable.add_workflow(6, start=False, previous="SUCCEEDED")
    stale = await wait_for_completion(portable_client, 6, poll=FAST_POLL)
    assert stale.disposition is Disposition.SUCCEEDED


async def test_wait_after_accepts_a_run_completed_after_it(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """A run that started and finished between two polls is only visible through completed_at."""
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    fake_portable.add_workflow(7, start=False, previous="SUCCEEDED", previous_completed_at=datetime.now(timezone.utc))
    status = await wait_for_completion(portable_client, 7, poll=FAST_POLL, after=before)
    assert status.disposition is Disposition.SUCCEEDED
    assert len(fake_portable.requests_for(7)) == 1


async def test_wait_after_trusts_a_seen_running_state_over_clock_skew(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """A NOT_RUNNING seen after RUNNING is final even if the server's completedAt is behind our clock."""
    skewed = "2000-01-01T00:00:00Z"
    fake_portable.add_workflow(
        8,
        script=[
            {"lifecycle": "RUNNING", "disposition": "NONE"},
            {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": skewed},
        ],
    )
    status = await wait_for_completion(portable_client, 8, poll=FAST_POLL, after=datetime.now(timezone.utc))
    assert status.disposition is Disposition.SUCCEEDED


async def test_wait_after_with_no_new_run_times_out(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(9, start=False, previous="SUCCEEDED")
    with pytest.raises(WaitTimeoutError):
        await wait_for_completion(portable_client, 9, poll=FAST_POLL, after=datetime.now(timezone.utc), timeout=0.2)
    assert len(fake_portable.requests_for(9)) > 2


async def test_wait_unknown_lifecycle_keeps_polling(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(
        10,
        script=[
            {"lifecycle": "QUEUED_FOR_CAPACITY", "disposition": "NONE"},
            {"lifecycle": "QUEUED_FOR_CAPACITY", "disposition": "NONE"},
            {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"},
        ],
    )
    status = await wait_for_completion(portable_client, 10, poll=FAST_POLL)
    assert status.disposition is Disposition.SUCCEEDED
    assert len(fake_portable.requests_for(10)) == 3


async def test_wait_unknown_final_disposition_is_returned_not_raised(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(11, script=[{"lifecycle": "NOT_RUNNING", "disposition": "PARTIALLY_SUCCEEDED"}])
    status = await wait_for_completion(portable_client, 11, poll=FAST_POLL)
    assert status.disposition is Disposition.UNKNOWN


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("forbidden", PermissionDeniedError),
        ("missing", WorkflowNotFoundError),
        ("badkey", AuthenticationError),
        ("invalid", InvalidResponseError),
    ],
)
async def test_wait_permanent_errors_raise_at_once(
    fake_portable: FakePortable, setup: str, error: type[Exception]
) -> None:
    fake_portable.add_workflow(12, running=60, forbidden=setup == "forbidden")
    if setup == "invalid":
        fake_portable.add_fault("invalid")
    key = "wrong-key" if setup == "badkey" else fake_portable.api_key
    wid = 404 if setup == "missing" else 12
    async with PortableClient(key, base_url=fake_portable.base_url) as client:
        with pytest.raises(error):
            await wait_for_completion(client, wid, poll=FAST_POLL)
    assert len(fake_portable.requests) == 1


async def test_wait_rides_out_an_outage(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(13, running=0.6)
    fake_portable.outage(0.05, 0.4)
    events: list[PollEvent] = []
    async with fake_portable.client(retry=RetryPolicy(attempts=2, initial=0.001, maximum=0.002)) as client:
        status = await wait_for_completion(client, 13, poll=FAST_POLL, on_poll=events.append)
    assert status.disposition is Disposition.SUCCEEDED
    failed = [e for e in events if e.error is not None]
    assert failed and all(e.status is None and isinstance(e.error, PortableAPIError) for e in failed)
    assert any(r.status == 503 for r in fake_portable.requests)


async def test_wait_gives_up_after_outage_tolerance(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(14, running=60)
    fake_portable.add_fault("drop")
    policy = PollPolicy(initial=0.01, maximum=0.02, outage_tolerance=0.2)
    start = time.monotonic()
    async with fake_portable.client(retry=RetryPolicy(attempts=2, initial=0.001, maximum=0.002)) as client:
        with pytest.raises(TransportError):
            await wait_for_completion(client, 14, poll=policy)
    assert 0.2 <= time.monotonic() - start < 2


async def test_wait_outage_tolerance_zero_raises_first_failed_poll(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(15, running=60)
    fake_portable.add_fault("503")
    async with fake_portable.client(retry=RetryPolicy(attempts=2, initial=0.001, maximum=0.002)) as client:
        with pytest.raises(PortableAPIError) as info:
            await wait_for_completion(client, 15, poll=PollPolicy(initial=0.01, maximum=0.01, outage_tolerance=0))
    assert info.value.status_code == 503
    assert len(fake_portable.requests) == 2  # the client's two attempts; the poll loop added none


async def test_wait_poll_loop_honours_retry_after(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(16, running=0.05)
    fake_portable.add_fault("429", retry_after=0.3, times=1)
    async with fake_portable.client(retry=RetryPolicy(attempts=1)) as client:
        await wait_for_completion(client, 16, poll=FAST_POLL)
    times = [r.time for r in fake_portable.requests]
    assert fake_portable.requests[0].status == 429
    assert times[1] - times[0] >= 0.29


async def test_wait_on_poll_hook_sync_and_async(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(17, running=0.1)
    sync_events: list[PollEvent] = []
    async_events: list[PollEvent] = []

    async def async_hook(event: PollEvent) -> None:
        await asyncio.sleep(0)
        async_events.append(event)

    await wait_for_completion(portable_client, 17, poll=FAST_POLL, on_poll=sync_events.append)
    fake_portable.trigger(17, running=0.1)
    await wait_for_completion(portable_client, 17, poll=FAST_POLL, on_poll=async_hook)
    for events in (sync_events, async_events):
        assert [e.attempt for e in events] == list(range(1, len(events) + 1))
        assert all(e.workflow_id == 17 for e in events)
        assert all(e.next_delay is not None and 0 <= e.next_delay <= FAST_POLL.maximum for e in events[:-1])
        assert events[-1].next_delay is None
        last = events[-1].status
        assert last is not None and last.lifecycle is Lifecycle.NOT_RUNNING
        assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)


async def test_wait_hook_exceptions_are_logged_not_raised(
    fake_portable: FakePortable, portable_client: PortableClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake_portable.add_workflow(18, running=0.05)

    def broken(event: PollEvent) -> None:
        raise RuntimeError("hook bug")

    status = await wait_for_completion(portable_client, 18, poll=FAST_POLL, on_poll=broken)
    assert status.disposition is Disposition.SUCCEEDED
    assert any("on_poll hook raised" in r.getMessage() for r in caplog.records)


async def test_wait_logs_each_poll_at_debug(
    fake_portable: FakePortable, portable_client: PortableClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="portable_wait")
    fake_portable.add_workflow(19, running=0.05)
    await wait_for_completion(portable_client, 19, poll=FAST_POLL)
    polls = [r for r in caplog.records if r.levelno == logging.DEBUG and "workflow 19 poll" in r.getMessage()]
    assert len(polls) == len(fake_portable.requests_for(19))


async def test_wait_cancellation_is_prompt_mid_sleep(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(20, running=60)
    task = asyncio.create_task(wait_for_completion(portable_client, 20, poll=PollPolicy(initial=30, maximum=30)))
    while not fake_portable.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 0.5


async def test_wait_cancellation_is_prompt_mid_request(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(21, running=60)
    fake_portable.add_fault("slow", delay=30)
    async with fake_portable.client() as client:
        task = asyncio.create_task(wait_for_completion(client, 21, poll=FAST_POLL))
        while fake_portable.in_flight == 0:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - start < 0.5
        assert client._in_flight == 0
    # Nothing of the wait outlives it: no task, and (with filterwarnings=error) no "Unclosed" warning.
    gc.collect()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert all("wait_for_completion" not in repr(t) for t in others)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"workflow_id": True}, TypeError),
        ({"workflow_id": "568971"}, TypeError),
        ({"workflow_id": 1.0}, TypeError),
        ({"workflow_id": 0}, ValueError),
        ({"workflow_id": -5}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": "10"}, TypeError),
        ({"poll": {"initial": 1}}, TypeError),
        ({"after": datetime(2024, 1, 1)}, ValueError),
        ({"after": "2024-01-01"}, TypeError),
        ({"on_poll": "print"}, TypeError),
        ({"raise_on_failure": "yes"}, TypeError),
    ],
)
async def test_wait_validates_arguments_before_any_request(
    fake_portable: FakePortable, portable_client: PortableClient, kwargs: dict[str, object], error: type[Exception]
) -> None:
    fake_portable.add_workflow(1)
    args: dict[str, object] = {"workflow_id": 1, **kwargs}
    wid = args.pop("workflow_id")
    with pytest.raises(error):
        await wait_for_completion(portable_client, wid, **args)  # type: ignore[arg-type]
    assert fake_portable.requests == []
