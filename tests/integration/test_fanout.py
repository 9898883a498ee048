"""as_completed and wait_for_many against the fake server."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from portable_wait import (
    Disposition,
    PollEvent,
    PortableClient,
    PortableError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowStatus,
    as_completed,
    wait_for_many,
)
from portable_wait.testing import FAST_POLL, FakePortable

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup


async def test_fanout_yields_in_completion_order(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(1, running=0.4)
    fake_portable.add_workflow(2, running=0.05)
    fake_portable.add_workflow(3, running=0.2, outcome="FAILED", errors=["x"])
    order = [wid async for wid, _ in as_completed(portable_client, [1, 2, 3], poll=FAST_POLL)]
    assert order == [2, 3, 1]


async def test_fanout_hundreds_mixed_outcomes_with_bounded_concurrency(fake_portable: FakePortable) -> None:
    expected: dict[int, str] = {}
    for wid in range(1, 301):
        kind = wid % 10
        if kind == 0:
            fake_portable.add_workflow(wid, running=0.2, outcome="FAILED", errors=[f"error of {wid}"])
            expected[wid] = "FAILED"
        elif kind == 1:
            fake_portable.add_workflow(wid, forbidden=True)
            expected[wid] = "403"
        elif kind == 2:
            expected[wid] = "404"  # never added
        elif kind == 3:
            fake_portable.add_workflow(wid, running=60)
            expected[wid] = "TIMEOUT"
        else:
            fake_portable.add_workflow(wid, pending=0.05, running=0.05 + (wid % 7) / 20)
            expected[wid] = "SUCCEEDED"
    async with fake_portable.client(max_concurrency=8) as client:
        # 300 waits polled every 10-50 ms keep a core busy: on a quarter of one, a wait's turn comes about every
        # 1.2 s, so the deadline leaves room for two turns after the slowest run (0.45 s) has ended.
        results = await wait_for_many(client, list(expected), return_exceptions=True, poll=FAST_POLL, timeout=3.0)
    assert list(results) == list(expected)
    for wid, outcome in results.items():
        want = expected[wid]
        if want == "SUCCEEDED":
            assert isinstance(outcome, WorkflowStatus) and outcome.disposition is Disposition.SUCCEEDED, wid
        elif want == "FAILED":
            assert isinstance(outcome, WorkflowFailedError) and f"error of {wid}" in str(outcome)
        elif want == "TIMEOUT":
            assert isinstance(outcome, WaitTimeoutError)
        elif want == "404":
            assert isinstance(outcome, WorkflowNotFoundError)
        else:
            assert isinstance(outcome, PortableError) and getattr(outcome, "status_code", None) == 403
        if isinstance(outcome, PortableError):
            assert outcome.workflow_id == wid
    assert 1 <= fake_portable.max_in_flight <= 8


async def test_fanout_duplicates_are_polled_once(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(1, start=False, previous="SUCCEEDED")
    fake_portable.add_workflow(2, start=False, previous="SUCCEEDED")
    results = await wait_for_many(portable_client, [2, 1, 2, 2, 1], poll=FAST_POLL)
    assert list(results) == [2, 1]
    assert len(fake_portable.requests) == 2


async def test_fanout_raises_exception_group_with_every_failure(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(1, running=0.05)
    fake_portable.add_workflow(2, running=0.05, outcome="FAILED", errors=["a"])
    fake_portable.add_workflow(3, running=0.05, outcome="FAILED", errors=["b"])
    fake_portable.add_workflow(4, running=60)
    with pytest.raises(ExceptionGroup) as info:
        await wait_for_many(portable_client, [1, 2, 3, 4, 5], poll=FAST_POLL, timeout=0.3)
    group = info.value
    assert sorted(e.workflow_id or 0 for e in group.exceptions if isinstance(e, PortableError)) == [2, 3, 4, 5]
    assert {type(e) for e in group.exceptions} == {WorkflowFailedError, WaitTimeoutError, WorkflowNotFoundError}
    assert "4 of 5" in str(group)
    # Every wait ran to its end: the timed-out one was not cut short by the others' failures.
    assert fake_portable.requests_for(4)[-1].time >= 0.25


async def test_fanout_all_succeeded_returns_statuses(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    for wid in (5, 6):
        fake_portable.add_workflow(wid, running=0.05)
    results = await wait_for_many(portable_client, (w for w in (5, 6)), poll=FAST_POLL)
    assert all(s.disposition is Disposition.SUCCEEDED for s in results.values())


async def test_fanout_on_poll_sees_every_workflow(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    for wid in range(1, 6):
        fake_portable.add_workflow(wid, running=0.05)
    events: list[PollEvent] = []
    await wait_for_many(portable_client, range(1, 6), poll=FAST_POLL, on_poll=events.append)
    assert {e.workflow_id for e in events} == set(range(1, 6))


async def test_fanout_validates_every_id_before_any_request(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(1)
    with pytest.raises(TypeError):
        await wait_for_many(portable_client, [1, 2, "3"], poll=FAST_POLL)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="positive"):
        async for _ in as_completed(portable_client, [1, -2], poll=FAST_POLL):
            pass
    with pytest.raises(TypeError, match=r"unexpected keyword 'bogus'.*accepted: after, on_poll"):
        await wait_for_many(portable_client, [1], poll=FAST_POLL, bogus=True)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"unexpected keyword 'timout'; did you mean 'timeout'\?"):
        await wait_for_many(portable_client, [1], timout=5)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"as_completed\(\) got an unexpected keyword 'raise_on_failur'"):
        async for _ in as_completed(portable_client, [1], raise_on_failur=False):  # type: ignore[call-arg]
            pass
    assert fake_portable.requests == []


async def test_fanout_empty_input(portable_client: PortableClient) -> None:
    assert await wait_for_many(portable_client, []) == {}
    assert [x async for x in as_completed(portable_client, [])] == []


async def test_fanout_early_exit_cancels_the_rest(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(1, running=0.02)
    for wid in range(2, 12):
        fake_portable.add_workflow(wid, running=60)
    async with contextlib.aclosing(as_completed(portable_client, range(1, 12), poll=FAST_POLL)) as results:
        async for wid, _ in results:
            assert wid == 1
            break
    sent = portable_client.request_count
    await asyncio.sleep(0.05)  # requests cancelled in flight may still reach the server's log
    count = len(fake_portable.requests)
    await asyncio.sleep(0.2)
    assert len(fake_portable.requests) == count  # nobody polls any more
    assert portable_client.request_count == sent
    # The hub (the client's, which lives on) keeps no stream and no request for the abandoned waits.
    assert portable_client._wait_hub().streams() == {}
    assert portable_client._in_flight == 0


async def test_fanout_cancelling_the_consumer_cancels_waiters(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    for wid in range(1, 6):
        fake_portable.add_workflow(wid, running=60)
    task = asyncio.create_task(wait_for_many(portable_client, range(1, 6), poll=FAST_POLL))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = portable_client.request_count
    await asyncio.sleep(0.05)  # requests cancelled in flight may still reach the server's log
    count = len(fake_portable.requests)
    await asyncio.sleep(0.15)
    assert len(fake_portable.requests) == count  # nobody polls any more
    assert portable_client.request_count == sent


async def test_fanout_a_bug_in_a_waiter_surfaces(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(1, running=0.05)

    class Boom(Exception):
        pass

    async def broken_get(workflow_id: int) -> WorkflowStatus:
        raise Boom

    portable_client.get_workflow_status = broken_get  # type: ignore[method-assign]
    with pytest.raises(Boom):
        await wait_for_many(portable_client, [1], poll=FAST_POLL)
