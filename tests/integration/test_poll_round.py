"""`poll_round` and `WaitState.snapshot`/`restore`: the hub's API for waits that do not stay in memory between
polls (Airflow's poke and reschedule modes)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from portable_wait import (
    Disposition,
    PollPolicy,
    PortableClient,
    RetryPolicy,
    TransportError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowStatus,
    wait_for_completion,
)
from portable_wait._hub import poll_round
from portable_wait._polling import WaitOptions, WaitState
from portable_wait.testing import FAST_POLL, FakePortable

SKEWED = "2000-01-01T00:00:00Z"


def states(ids: list[int], options: WaitOptions, client: PortableClient) -> dict[int, WaitState]:
    now = asyncio.get_running_loop().time()
    return {wid: WaitState(wid, options, now) for wid in ids}


async def test_poll_round_returns_outcomes_or_none_while_waiting(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(1, running=60)
    fake_portable.add_workflow(2, script=[{"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"}])
    fake_portable.add_workflow(3, script=[{"lifecycle": "NOT_RUNNING", "disposition": "FAILED", "errors": ["x"]}])
    fake_portable.add_fault("503", workflow_id=4)
    fake_portable.add_workflow(4, running=60)
    round_states = states([1, 2, 3, 4], WaitOptions.build(poll=FAST_POLL), portable_client)
    results = await poll_round(portable_client, round_states)
    assert list(results) == [1, 2, 3, 4]
    assert results[1] is None
    assert isinstance(results[2], WorkflowStatus) and results[2].disposition is Disposition.SUCCEEDED
    assert isinstance(results[3], WorkflowFailedError)
    assert results[4] is None  # a transient failure is ridden out across rounds
    assert round_states[4].failing_since is not None
    assert [round_states[w].polls for w in (1, 2, 3, 4)] == [1, 1, 1, 1]
    assert [len(fake_portable.requests_for(w)) for w in (1, 2, 3)] == [1, 1, 1]
    assert portable_client._wait_hub().streams() == {}


async def test_poll_round_carries_after_across_rounds_and_processes(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """The poke-mode bug it fixes: a run seen RUNNING in one poke, then NOT_RUNNING with a skewed completedAt
    in the next (another process, in reschedule mode), is final only if "seen running" survived."""
    fake_portable.add_workflow(
        5,
        script=[
            {"lifecycle": "RUNNING", "disposition": "NONE"},
            {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": SKEWED},
        ],
    )
    options = WaitOptions.build(after=datetime.now(timezone.utc), poll=FAST_POLL)
    first = states([5], options, portable_client)
    assert (await poll_round(portable_client, first)) == {5: None}
    saved = json.dumps([s.snapshot(asyncio.get_running_loop().time()) for s in first.values()])

    # Another process has another loop clock: restore rebases the times on the wall clock.
    now = asyncio.get_running_loop().time()
    restored = {d["workflow_id"]: WaitState.restore(d, options, now) for d in json.loads(saved)}
    assert restored[5].seen_active and restored[5].polls == 1
    result = (await poll_round(portable_client, restored))[5]
    assert isinstance(result, WorkflowStatus) and result.disposition is Disposition.SUCCEEDED
    # Without the carried state the same answer is the previous run's: still waiting.
    assert (await poll_round(portable_client, states([5], options, portable_client))) == {5: None}


async def test_poll_round_outage_tolerance_holds_across_rounds(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(6, running=60)
    fake_portable.add_fault("drop")
    options = WaitOptions.build(poll=PollPolicy(initial=0.01, maximum=0.01, outage_tolerance=0.2))
    async with fake_portable.client(retry=RetryPolicy(attempts=1)) as client:
        round_states = states([6], options, client)
        assert (await poll_round(client, round_states)) == {6: None}
        snap = round_states[6].snapshot(asyncio.get_running_loop().time())
        await asyncio.sleep(0.25)
        later = {6: WaitState.restore(snap, options, asyncio.get_running_loop().time())}
        assert isinstance((await poll_round(client, later))[6], TransportError)


async def test_poll_round_deadline_survives_restore(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(7, running=60)
    options = WaitOptions.build(timeout=0.1, poll=FAST_POLL)
    round_states = states([7], options, portable_client)
    assert (await poll_round(portable_client, round_states)) == {7: None}
    snap = round_states[7].snapshot(asyncio.get_running_loop().time())
    await asyncio.sleep(0.15)
    later = {7: WaitState.restore(snap, options, asyncio.get_running_loop().time())}
    assert isinstance((await poll_round(portable_client, later))[7], WaitTimeoutError)


async def test_poll_round_shares_the_stream_of_a_live_wait(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(8, running=60)
    fake_portable.add_fault("slow", delay=0.2, workflow_id=8, requests=[1])
    live = asyncio.create_task(wait_for_completion(portable_client, 8, poll=PollPolicy(initial=10, maximum=10)))
    while fake_portable.in_flight == 0:
        await asyncio.sleep(0.01)
    assert (await poll_round(portable_client, states([8], WaitOptions.build(), portable_client))) == {8: None}
    assert len(fake_portable.requests_for(8)) == 1  # served by the live wait's request in flight
    live.cancel()
    with pytest.raises(asyncio.CancelledError):
        await live


def test_wait_state_restore_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="snapshot"):
        WaitState.restore({"workflow_id": 1}, WaitOptions.build(), 0.0)
    with pytest.raises(ValueError, match="polls"):
        WaitState.restore(
            {"workflow_id": 1, "started": 0.0, "seen_active": False, "failing_since": None, "polls": -1},
            WaitOptions.build(),
            0.0,
        )
