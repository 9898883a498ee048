"""The hub's coalescing: waits on one workflow through one client share one poll stream, each judged by its own
rules (``after``, deadline, ``raise_on_failure``, ``on_poll``), and leaving it never disturbs the others."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import sys
import time
import warnings
from datetime import datetime, timezone

import pytest

from portable_wait import (
    Disposition,
    InvalidResponseError,
    PollEvent,
    PollPolicy,
    PortableClient,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowStatus,
    as_completed,
    wait_for_completion,
    wait_for_many,
)
from portable_wait._polling import WaitOptions
from portable_wait.testing import FAST_POLL, FakePortable

STEADY = PollPolicy(initial=0.05, maximum=0.05, multiplier=1, jitter=0)
SKEWED = "2000-01-01T00:00:00Z"


async def test_hub_1000_tasks_on_one_workflow_send_one_waiters_requests(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    # Both runs end when the reference has been polled a few times, not after a fixed time: on a loaded machine,
    # enrolling 1,000 waits could otherwise outlast a short run, leaving one round to compare.
    fake_portable.add_workflow(1, running=60)
    fake_portable.add_workflow(2, running=60)  # the reference: one waiter alone on its own stream
    alone = asyncio.create_task(wait_for_completion(portable_client, 2, poll=STEADY))
    crowd = [asyncio.create_task(wait_for_completion(portable_client, 1, poll=STEADY)) for _ in range(1000)]
    for _ in range(500):
        if len(fake_portable.requests_for(2)) >= 5:
            break
        await asyncio.sleep(0.02)
    fake_portable.finish(1)
    fake_portable.finish(2)
    statuses = await asyncio.gather(*crowd)
    await alone
    assert all(s.disposition is Disposition.SUCCEEDED for s in statuses)
    one, many = len(fake_portable.requests_for(2)), len(fake_portable.requests_for(1))
    assert one >= 5
    assert abs(many - one) <= 1, (many, one)
    assert portable_client._wait_hub().streams() == {}


async def test_hub_waiters_with_different_after_share_a_stream(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(5, start=False, previous="SUCCEEDED")
    triggered = datetime.now(timezone.utc)
    patient = asyncio.create_task(wait_for_completion(portable_client, 5, poll=FAST_POLL, after=triggered))
    # The same first answer (the previous run's result) is final for a waiter without after=...
    stale = await wait_for_completion(portable_client, 5, poll=FAST_POLL)
    assert stale.disposition is Disposition.SUCCEEDED
    assert len(fake_portable.requests_for(5)) == 1
    # ...and not for the one with it, which goes on polling until the new run is over.
    assert not patient.done()
    await asyncio.sleep(0.1)
    fake_portable.trigger(5, running=0.1, outcome="FAILED", errors=["new run failed"])
    with pytest.raises(WorkflowFailedError, match="new run failed"):
        await patient


async def test_hub_waiters_with_different_raise_on_failure_judge_one_answer(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(6, running=0.1, outcome="FAILED", errors=["boom"])
    raising = asyncio.create_task(wait_for_completion(portable_client, 6, poll=STEADY))
    returning = asyncio.create_task(wait_for_completion(portable_client, 6, poll=STEADY, raise_on_failure=False))
    status = await returning
    assert status.disposition is Disposition.FAILED
    with pytest.raises(WorkflowFailedError):
        await raising
    seen = [r.lifecycle for r in fake_portable.requests_for(6)]
    assert seen.count("NOT_RUNNING") == 1  # one final answer served both


async def test_hub_one_waiters_deadline_does_not_disturb_the_other(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(7, running=0.4)
    short = asyncio.create_task(wait_for_completion(portable_client, 7, poll=STEADY, timeout=0.15))
    long = asyncio.create_task(wait_for_completion(portable_client, 7, poll=STEADY))
    with pytest.raises(WaitTimeoutError) as info:
        await short
    assert info.value.last_status is not None
    assert not long.done()
    assert portable_client._wait_hub().streams() == {7: 1}
    assert (await long).disposition is Disposition.SUCCEEDED


async def test_hub_cancelling_one_waiter_mid_request_keeps_the_request_for_the_other(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(8, script=[{"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"}])
    fake_portable.add_fault("slow", delay=0.3, times=1)
    kept = asyncio.create_task(wait_for_completion(portable_client, 8, poll=FAST_POLL))
    dropped = asyncio.create_task(wait_for_completion(portable_client, 8, poll=FAST_POLL))
    while fake_portable.in_flight == 0:
        await asyncio.sleep(0.01)
    dropped.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert (await kept).disposition is Disposition.SUCCEEDED
    assert len(fake_portable.requests_for(8)) == 1  # the request in flight was not cancelled, nor repeated


async def test_hub_cancelling_every_waiter_mid_request_cancels_it(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(9, running=60)
    fake_portable.add_fault("slow", delay=30)
    tasks = [asyncio.create_task(wait_for_completion(portable_client, 9, poll=FAST_POLL)) for _ in range(3)]
    while fake_portable.in_flight == 0:
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.02)
    assert portable_client._in_flight == 0
    assert portable_client._wait_hub().streams() == {}


async def test_hub_stream_polls_on_its_most_eager_waiters_schedule(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(10, running=60)
    slow_events: list[PollEvent] = []
    slow = asyncio.create_task(
        wait_for_completion(portable_client, 10, poll=PollPolicy(initial=10, maximum=10), on_poll=slow_events.append)
    )
    await asyncio.sleep(0.05)
    assert len(fake_portable.requests_for(10)) == 1
    with pytest.raises(WaitTimeoutError):
        await wait_for_completion(portable_client, 10, poll=STEADY, timeout=0.5)
    eager = len(fake_portable.requests_for(10))
    assert eager >= 6  # every 50 ms while the eager waiter was there (the slow one alone: every 10 s)
    assert len(slow_events) == eager  # every answer served the slow waiter too
    await asyncio.sleep(0.4)
    # Back to the slow schedule: at most the one poll already due for the eager waiter goes out after it left.
    assert len(fake_portable.requests_for(10)) <= eager + 1
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow


async def test_hub_joiner_with_after_ignores_an_answer_requested_before_it_joined(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """A RUNNING answer to a request sent before a wait with after= began may be the previous run's: it must not
    count as "seen running", or the previous run's end would pass for the new run's."""
    fake_portable.add_workflow(
        11,
        script=[
            {"lifecycle": "RUNNING", "disposition": "NONE"},
            {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": SKEWED},
        ],
    )
    fake_portable.add_fault("slow", delay=0.2, workflow_id=11, requests=[1])
    first = asyncio.create_task(wait_for_completion(portable_client, 11, poll=FAST_POLL))
    while fake_portable.in_flight == 0:
        await asyncio.sleep(0.01)
    events: list[PollEvent] = []
    with pytest.raises(WaitTimeoutError):
        await wait_for_completion(
            portable_client, 11, poll=FAST_POLL, after=datetime.now(timezone.utc), timeout=0.4, on_poll=events.append
        )
    assert (await first).disposition is Disposition.SUCCEEDED
    assert events and all(e.status is not None and e.status.lifecycle.value == "NOT_RUNNING" for e in events)


async def test_hub_joiner_without_after_is_served_by_the_request_in_flight(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(12, script=[{"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"}])
    fake_portable.add_fault("slow", delay=0.2, workflow_id=12, requests=[1])
    first = asyncio.create_task(wait_for_completion(portable_client, 12, poll=FAST_POLL))
    while fake_portable.in_flight == 0:
        await asyncio.sleep(0.01)
    second = await wait_for_completion(portable_client, 12, poll=FAST_POLL)
    assert second.disposition is Disposition.SUCCEEDED
    await first
    assert len(fake_portable.requests_for(12)) == 1


async def test_hub_fanout_and_single_waits_share_streams(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    for wid in range(20, 30):
        fake_portable.add_workflow(wid, running=0.3)
    single = [asyncio.create_task(wait_for_completion(portable_client, wid, poll=STEADY)) for wid in range(20, 30)]
    many = asyncio.create_task(wait_for_many(portable_client, range(20, 30), poll=STEADY))
    seen = [wid async for wid, _ in as_completed(portable_client, range(20, 30), poll=STEADY)]
    assert sorted(seen) == list(range(20, 30))
    results = await many
    singles: list[WorkflowStatus] = await asyncio.gather(*single)
    assert all(s.disposition is Disposition.SUCCEEDED for s in [*results.values(), *singles])
    alone = len(fake_portable.requests) / 10
    assert alone <= 0.3 / 0.05 + 3  # one stream per workflow, not three


async def test_hub_deadline_fires_while_every_worker_is_busy(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(30, running=60)
    fake_portable.add_workflow(31, running=60)
    fake_portable.add_fault("slow", delay=5, workflow_id=30)
    async with fake_portable.client(max_concurrency=1) as client:
        blocker = asyncio.create_task(wait_for_completion(client, 30, poll=FAST_POLL))
        while fake_portable.in_flight == 0:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(WaitTimeoutError):
            await wait_for_completion(client, 31, poll=FAST_POLL, timeout=0.2)
        assert time.monotonic() - start < 1.0
        blocker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocker


async def test_hub_waits_joining_one_by_one_do_not_each_send_a_request(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """A web service's requests arrive one by one: each new wait on a just-polled stream is served by the
    stream's next poll, due when the last answer is as old as the joiner's first pause, not by a poll of its own."""
    fake_portable.add_workflow(40, running=60)
    every = PollPolicy(initial=0.5, maximum=0.5, multiplier=1, jitter=0)
    events: list[PollEvent] = []
    tasks = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(40):  # one new wait every 25 ms for a second
        tasks.append(asyncio.create_task(wait_for_completion(portable_client, 40, poll=every, on_poll=events.append)))
        await asyncio.sleep(0.025)
    took = loop.time() - start
    assert len(fake_portable.requests_for(40)) <= took / 0.5 + 2  # not 40
    assert all(e.elapsed <= 0.5 + 0.2 for e in events if e.attempt == 1)  # each served within its first pause
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_hub_joiner_with_a_short_deadline_is_not_held_back(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """A wait joining a just-answered stream is held back to the stream's next poll, unless its deadline comes
    too soon for that: then it polls at once, as a wait of its own would, rather than time out unanswered."""
    fake_portable.add_workflow(41, running=60)
    every = PollPolicy(initial=1.0, maximum=1.0, multiplier=1, jitter=0)
    first = asyncio.create_task(wait_for_completion(portable_client, 41, poll=every))
    while not fake_portable.requests_for(41):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the stream was answered a moment ago; its next poll is 0.9 s away
    with pytest.raises(WaitTimeoutError) as caught:
        await wait_for_completion(portable_client, 41, poll=every, timeout=0.5)
    assert caught.value.last_status is not None  # it was served an answer before its deadline
    assert len(fake_portable.requests_for(41)) == 2
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_hub_fanout_enrolls_in_chunks_and_cancelling_mid_enrolment_leaves_nothing(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    for wid in range(1, 5001):
        fake_portable.add_workflow(wid, running=60)
    task = asyncio.create_task(wait_for_many(portable_client, range(1, 5001), poll=PollPolicy(initial=10, maximum=10)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    hub = portable_client._wait_hub()
    enrolled = len(hub.streams())
    assert 0 < enrolled < 5000  # the loop got turns while enrolling
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hub.streams() == {}
    await asyncio.sleep(0.05)
    assert portable_client._in_flight == 0


async def test_hub_timer_survives_a_waiter_whose_timeout_cannot_be_built(
    fake_portable: FakePortable, portable_client: PortableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug building one waiter's timeout error (as an unprintable completedAt once did) must end that wait
    # with the error, and leave the timer armed for every other wait of the client.
    from portable_wait._polling import WaitState

    real = WaitState.timed_out

    def broken(self: WaitState, last: WorkflowStatus | None) -> WaitTimeoutError:
        if self.wid == 31:
            raise OverflowError("date value out of range")
        return real(self, last)

    monkeypatch.setattr(WaitState, "timed_out", broken)
    fake_portable.add_workflow(31, running=60)
    fake_portable.add_workflow(32, running=0.4)
    fake_portable.add_workflow(33, running=60)
    bad = asyncio.create_task(wait_for_completion(portable_client, 31, poll=STEADY, timeout=0.1))
    good = asyncio.create_task(wait_for_completion(portable_client, 32, poll=STEADY))
    later = asyncio.create_task(wait_for_completion(portable_client, 33, poll=STEADY, timeout=0.3))
    with pytest.raises(OverflowError):
        await asyncio.wait_for(bad, 5)
    assert (await asyncio.wait_for(good, 5)).disposition is Disposition.SUCCEEDED
    with pytest.raises(WaitTimeoutError):  # a deadline after the broken one still fires
        await asyncio.wait_for(later, 5)


async def test_hub_completed_at_before_utc_min_fails_the_wait_not_the_hub(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    early = {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": "0001-01-01T00:00:00+01:00"}
    fake_portable.add_workflow(34, script=[early])
    fake_portable.add_workflow(35, running=0.3)
    triggered = datetime.now(timezone.utc)
    odd = asyncio.create_task(wait_for_completion(portable_client, 34, poll=STEADY, timeout=0.2, after=triggered))
    good = asyncio.create_task(wait_for_completion(portable_client, 35, poll=STEADY))
    with pytest.raises(InvalidResponseError, match="outside the range a UTC timestamp can hold"):
        await asyncio.wait_for(odd, 5)
    assert (await asyncio.wait_for(good, 5)).disposition is Disposition.SUCCEEDED


async def test_hub_hook_raising_cancelled_error_is_a_hook_error(
    fake_portable: FakePortable, caplog: pytest.LogCaptureFixture
) -> None:
    # The hook awaits a task someone else cancelled: its CancelledError must not kill the only worker.
    caplog.set_level(logging.DEBUG, logger="portable_wait")

    async def hook(event: PollEvent) -> None:
        victim = asyncio.ensure_future(asyncio.sleep(10))
        victim.cancel()
        await victim

    def sync_hook(event: PollEvent) -> None:
        raise asyncio.CancelledError

    fake_portable.add_workflow(41, running=0.2)
    fake_portable.add_workflow(42, running=0.2)
    fake_portable.add_workflow(43, running=0.2)
    async with fake_portable.client(max_concurrency=1) as client:
        done = await asyncio.wait_for(
            asyncio.gather(
                wait_for_completion(client, 41, poll=STEADY, on_poll=hook),
                wait_for_completion(client, 42, poll=STEADY),
                wait_for_completion(client, 43, poll=STEADY, on_poll=sync_hook),
            ),
            5,
        )
    assert [s.disposition for s in done] == [Disposition.SUCCEEDED] * 3
    if sys.version_info >= (3, 11):
        assert "on_poll hook raised CancelledError for workflow 41" in caplog.text
        assert "in hook" in caplog.text  # with its traceback: where the hook went wrong
    else:  # no cancel count to tell it from a cancellation from outside: it ends the hook quietly
        assert "on_poll hook for workflow 41 ended with CancelledError" in caplog.text
    assert "on_poll hook raised for workflow 43" in caplog.text


async def test_hub_cancelling_the_wait_running_a_hook_still_cancels_it(fake_portable: FakePortable) -> None:
    started = asyncio.Event()

    async def slow_hook(event: PollEvent) -> None:
        started.set()
        await asyncio.sleep(10)

    fake_portable.add_workflow(44, running=60)
    async with fake_portable.client(max_concurrency=1) as client:
        task = asyncio.create_task(wait_for_completion(client, 44, poll=STEADY, on_poll=slow_hook))
        await asyncio.wait_for(started.wait(), 5)
        await client.aclose()  # cancels the worker mid-hook: that cancellation must go through
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(task, 5)


async def test_hub_worker_killed_from_outside_is_replaced(fake_portable: FakePortable) -> None:
    # Mid-request (the fake answers after 0.3 s), so the stream it was polling loses its worker.
    fake_portable.add_workflow(45, running=60)
    fake_portable.add_workflow(46, running=0.3)
    fake_portable.add_fault("slow", workflow_id=45, delay=0.3)
    async with fake_portable.client(max_concurrency=1) as client:
        hub = client._wait_hub()
        stuck = asyncio.create_task(wait_for_completion(client, 45, poll=STEADY))
        await asyncio.sleep(0.1)
        hub._workers[0].cancel()
        with pytest.raises(RuntimeError, match="lost its hub worker"):
            await asyncio.wait_for(stuck, 5)
        status = await asyncio.wait_for(wait_for_completion(client, 46, poll=STEADY), 5)
    assert status.disposition is Disposition.SUCCEEDED


async def test_hub_idle_worker_killed_from_outside_is_replaced_for_the_waits_enrolled(
    fake_portable: FakePortable,
) -> None:
    fake_portable.add_workflow(47, running=0.6)
    slow = PollPolicy(initial=0.3, maximum=0.3, multiplier=1, jitter=0)
    async with fake_portable.client(max_concurrency=1) as client:
        wait = asyncio.create_task(wait_for_completion(client, 47, poll=slow))
        await asyncio.sleep(0.15)  # answered at once; the next poll is due at 0.3 s: the worker is parked
        hub = client._wait_hub()
        hub._workers[0].cancel()
        status = await asyncio.wait_for(wait, 5)
    assert status.disposition is Disposition.SUCCEEDED


async def test_hub_a_slow_async_hook_holds_up_no_other_wait(fake_portable: FakePortable) -> None:
    # One worker: a hook awaited inline would stop every other wait of the client until it returned.
    release = asyncio.Event()
    entered = asyncio.Event()

    async def stuck(event: PollEvent) -> None:
        entered.set()
        await release.wait()

    fake_portable.add_workflow(50, running=60)
    fake_portable.add_workflow(51, running=0.2)
    async with fake_portable.client(max_concurrency=1) as client:
        slow = asyncio.create_task(wait_for_completion(client, 50, poll=STEADY, on_poll=stuck))
        await asyncio.wait_for(entered.wait(), 5)
        other = await asyncio.wait_for(wait_for_completion(client, 51, poll=STEADY), 5)
        assert other.disposition is Disposition.SUCCEEDED
        # Its own stream waits for it, as an inline hook would: no poll piles up behind a running hook.
        assert len(fake_portable.requests_for(50)) == 1
        release.set()
        while len(fake_portable.requests_for(50)) < 3:  # polling goes on once the hook returned
            await asyncio.sleep(0.01)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)


async def test_hub_a_wait_returns_after_the_hook_told_of_its_last_poll(fake_portable: FakePortable) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def hook(event: PollEvent) -> None:
        if event.status is not None and not event.status.is_running:
            seen.append("final: entered")
            await release.wait()
            seen.append("final: returned")

    fake_portable.add_workflow(52, running=0.1)
    async with fake_portable.client() as client:
        task = asyncio.create_task(wait_for_completion(client, 52, poll=STEADY, on_poll=hook))
        while not seen:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert not task.done()  # its hook still runs
        release.set()
        status = await asyncio.wait_for(task, 5)
    assert status.disposition is Disposition.SUCCEEDED and seen == ["final: entered", "final: returned"]


async def test_hub_a_waits_hooks_run_one_at_a_time_in_order(fake_portable: FakePortable) -> None:
    log: list[tuple[str, int]] = []

    async def hook(event: PollEvent) -> None:
        log.append(("in", event.attempt))
        await asyncio.sleep(0.15)
        log.append(("out", event.attempt))

    fake_portable.add_workflow(53, running=60)
    async with fake_portable.client() as client:
        first = asyncio.create_task(wait_for_completion(client, 53, poll=STEADY, on_poll=hook))
        # Waits joining every 10 ms make the stream poll again while the first wait's last hook still runs.
        others = []
        for _ in range(30):
            others.append(asyncio.create_task(wait_for_completion(client, 53, poll=STEADY)))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.4)
        for task in (first, *others):
            task.cancel()
        await asyncio.gather(first, *others, return_exceptions=True)
    attempts = [attempt for kind, attempt in log if kind == "in"]
    assert len(attempts) >= 3 and attempts == sorted(attempts)
    # Never two at once: every hook returned before the next one started.
    assert all(log[i][0] == "in" and log[i + 1] == ("out", log[i][1]) for i in range(0, len(log) - 1, 2))


@pytest.mark.parametrize("end", ["cancelled", "timed out"])
async def test_hub_a_wait_that_ends_early_cancels_its_running_hook(fake_portable: FakePortable, end: str) -> None:
    entered = asyncio.Event()
    outcome: list[str] = []

    async def stuck(event: PollEvent) -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    fake_portable.add_workflow(54, running=60)
    async with fake_portable.client() as client:
        timeout = 0.3 if end == "timed out" else None
        task = asyncio.create_task(wait_for_completion(client, 54, poll=STEADY, timeout=timeout, on_poll=stuck))
        await asyncio.wait_for(entered.wait(), 5)
        if end == "cancelled":
            task.cancel()
        with pytest.raises((asyncio.CancelledError, WaitTimeoutError)):
            await asyncio.wait_for(task, 5)

        async def hook_ended() -> None:
            while not outcome or client._wait_hub()._hooks:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(hook_ended(), 5)
        assert outcome == ["cancelled"]


async def test_hub_a_final_hook_that_outlives_the_deadline_still_gives_the_final_status(
    fake_portable: FakePortable,
) -> None:
    # The last answer came in time; only the hook told of it did not return: the wait ends at its deadline with
    # that answer, and the hook is cancelled.
    cancelled = asyncio.Event()

    async def stuck_on_the_end(event: PollEvent) -> None:
        if event.status is not None and not event.status.is_running:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    fake_portable.add_workflow(55, running=0.1)
    async with fake_portable.client() as client:
        status = await asyncio.wait_for(
            wait_for_completion(client, 55, poll=STEADY, timeout=0.6, on_poll=stuck_on_the_end), 5
        )
        assert status.disposition is Disposition.SUCCEEDED
        await asyncio.wait_for(cancelled.wait(), 5)
        assert not client._wait_hub()._deferred


async def test_hub_a_slow_hook_holds_up_no_other_wait_on_the_same_workflow(fake_portable: FakePortable) -> None:
    release = asyncio.Event()
    calls = 0

    async def stuck(event: PollEvent) -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    fake_portable.add_workflow(56, running=0.3)
    async with fake_portable.client() as client:
        slow = asyncio.create_task(wait_for_completion(client, 56, poll=STEADY, on_poll=stuck))
        await asyncio.sleep(0.05)
        # The same workflow's stream goes on polling for this wait, and its hookless joiners, while the hook runs;
        # the slow wait is not told of those polls (at most one hook of a wait runs at a time).
        other = await asyncio.wait_for(wait_for_completion(client, 56, poll=STEADY), 5)
        for _ in range(5):
            await asyncio.wait_for(wait_for_completion(client, 56, poll=STEADY, timeout=1), 5)
        assert other.disposition is Disposition.SUCCEEDED and calls == 1 and not slow.done()
        release.set()
        status = await asyncio.wait_for(slow, 5)  # judged by the first answer after its hook returned
    assert status.disposition is Disposition.SUCCEEDED and calls == 2


async def test_hub_a_hook_may_wait_on_its_own_workflow(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(57, running=0.3)
    async with fake_portable.client() as client:

        async def nested(event: PollEvent) -> None:
            if event.attempt == 1:
                await wait_for_completion(client, 57, poll=STEADY)

        status = await asyncio.wait_for(wait_for_completion(client, 57, poll=STEADY, on_poll=nested), 5)
    assert status.disposition is Disposition.SUCCEEDED


async def test_hub_a_hook_may_close_the_client(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(58, running=60)
    fake_portable.add_workflow(59, running=60)
    client = fake_portable.client()

    async def closing(event: PollEvent) -> None:
        if event.attempt == 2:
            await client.aclose()

    async with client:
        first = asyncio.create_task(wait_for_completion(client, 58, poll=STEADY, on_poll=closing))
        second = asyncio.create_task(wait_for_completion(client, 59, poll=STEADY))
        for task in (first, second):
            with pytest.raises(RuntimeError, match="closed"):
                await asyncio.wait_for(task, 5)


async def test_hub_closing_the_client_lets_a_cancelled_hook_clean_up_first(fake_portable: FakePortable) -> None:
    entered = asyncio.Event()
    cleaned = []

    async def hook(event: PollEvent) -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)
            cleaned.append(event.attempt)

    fake_portable.add_workflow(60, running=60)
    client = fake_portable.client()
    async with client:
        task = asyncio.create_task(wait_for_completion(client, 60, poll=STEADY, on_poll=hook))
        await asyncio.wait_for(entered.wait(), 5)
    assert cleaned == [1]  # done before aclose() returned, on 3.10 too
    with pytest.raises(RuntimeError, match="closed"):
        await task


async def test_hub_a_hook_cancelled_before_it_started_is_not_left_unawaited(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    async def hook(event: PollEvent) -> None:
        raise AssertionError("never runs")  # pragma: no cover

    fake_portable.add_workflow(61, running=60)
    hub = portable_client._wait_hub()
    waiter, _ = hub.enroll(61, WaitOptions.build(on_poll=hook, poll=PollPolicy(initial=60, maximum=60)))
    hub._emit(waiter, hub.loop.time(), None, 1.0)  # its hook's task is made...
    hub.leave(waiter)  # ...and cancelled before its first step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await asyncio.sleep(0.01)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_hub_joiners_with_short_deadlines_still_share_polls(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    # Held back at most half way to their deadline: each gets a status in time, and they still share requests.
    fake_portable.add_workflow(62, running=60)
    every = PollPolicy(initial=0.5, maximum=2, jitter=0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for _ in range(30):
        tasks.append(asyncio.create_task(wait_for_completion(portable_client, 62, poll=every, timeout=0.9)))
        await asyncio.sleep(0.02)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    took = loop.time() - start
    assert all(isinstance(o, WaitTimeoutError) and o.last_status is not None for o in outcomes)
    assert len(fake_portable.requests_for(62)) <= took / 0.45 + 3  # not one each


async def test_hub_waits_with_slow_hooks_still_share_one_workflows_polls(fake_portable: FakePortable) -> None:
    # Each hook returning must not trigger a poll of its own: waits with hooks share requests like any others.
    rng = random.Random(4)

    async def hook(event: PollEvent) -> None:
        await asyncio.sleep(rng.uniform(0.05, 0.3))

    fake_portable.add_workflow(63, running=60)
    every = PollPolicy(initial=0.1, maximum=0.1, multiplier=1, jitter=0)
    async with fake_portable.client() as client:
        tasks = [asyncio.create_task(wait_for_completion(client, 63, poll=every, on_poll=hook)) for _ in range(20)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(2)
        took = loop.time() - start
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(fake_portable.requests_for(63)) <= took / 0.1 * 1.5 + 3  # about one per 0.1 s, not one per hook


async def test_hub_a_wait_busy_with_its_hook_still_gets_a_final_status_that_came_in_time(
    fake_portable: FakePortable,
) -> None:
    release = asyncio.Event()

    async def slow_on_the_second(event: PollEvent) -> None:
        if event.attempt == 2:
            await release.wait()

    fake_portable.add_workflow(64, running=0.3)
    async with fake_portable.client() as client:
        busy = asyncio.create_task(
            wait_for_completion(client, 64, poll=STEADY, timeout=1.0, on_poll=slow_on_the_second)
        )
        other = await asyncio.wait_for(wait_for_completion(client, 64, poll=STEADY), 5)  # sees the end at ~0.3 s
        assert other.disposition is Disposition.SUCCEEDED
        status = await asyncio.wait_for(busy, 5)  # at its deadline: the final status, not a timeout
        assert status.disposition is Disposition.SUCCEEDED
        release.set()


async def test_hub_closing_the_client_cut_short_leaves_no_wait_hanging(fake_portable: FakePortable) -> None:
    async def slow_to_clean_up(event: PollEvent) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.5)

    fake_portable.add_workflow(65, running=60)
    fake_portable.add_workflow(66, running=60)
    client = fake_portable.client()
    await client.__aenter__()
    first = asyncio.create_task(wait_for_completion(client, 65, poll=STEADY, on_poll=slow_to_clean_up))
    second = asyncio.create_task(wait_for_completion(client, 66, poll=STEADY))
    await asyncio.sleep(0.2)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.aclose(), 0.1)  # a shutdown deadline cuts closing short
    for task in (first, second):
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(task, 5)
    await client.aclose()  # safe to call twice: this time it ends, connections included
