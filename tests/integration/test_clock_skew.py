"""after= against fast runs and skewed clocks: the fake's clock_offset shifts its Date headers and completedAt."""

from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from portable_wait import (
    Disposition,
    PollPolicy,
    PortableClient,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowStatus,
    wait_for_completion,
    wait_for_many,
)
from portable_wait.testing import FAST_POLL, FakePortable

# Slower than the runs below, so a run starts and ends between two polls and is never seen going: only
# completedAt can tell it from the previous run.
BLIND = PollPolicy(initial=0.3, maximum=0.3, multiplier=1, jitter=0)


async def test_fake_clock_offset_shifts_date_and_completed_at() -> None:
    async with FakePortable(clock_offset=-3600) as fake:
        fake.add_workflow(1, running=0.01)
        await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as session:
            url = f"{fake.base_url}/v2/workflows/1/status"
            async with session.get(url, headers={"Authorization": f"Bearer {fake.api_key}"}) as response:
                date = email.utils.parsedate_to_datetime(response.headers["Date"])
                completed = WorkflowStatus.model_validate_json(await response.read()).completed_at
    assert completed is not None
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    assert abs((date - hour_ago).total_seconds()) < 2
    assert abs((completed - hour_ago).total_seconds()) < 2


@pytest.mark.parametrize("skew", [0.0, 5.0, -5.0])
async def test_after_finds_a_run_that_failed_before_the_first_poll(skew: float) -> None:
    """Bad source credentials fail a run within a second: it is over before the wait polls, and must count.

    ``skew`` is how far the user's clock is ahead of Portable's.
    """
    async with FakePortable(clock_offset=-skew) as fake:
        fake.add_workflow(1, start=False, previous="SUCCEEDED")
        after = datetime.now(timezone.utc)  # read before triggering, as the README says
        fake.trigger(1, running=0.05, outcome="FAILED", errors=["source: invalid credentials"])
        await asyncio.sleep(0.2)
        async with fake.client() as client:
            with pytest.raises(WorkflowFailedError, match="invalid credentials"):
                await wait_for_completion(client, 1, poll=BLIND, after=after, timeout=5)
    assert {r.lifecycle for r in fake.requests} == {"NOT_RUNNING"}  # never seen running


@pytest.mark.parametrize("skew", [5.0, -5.0])
async def test_after_with_skewed_clock_refuses_the_previous_run_and_finds_the_new_one(skew: float) -> None:
    """User clock 5 s ahead of Portable's, or behind: the previous result (3 s before the trigger) is refused,
    the new run, started and ended between two polls, is found."""
    async with FakePortable(clock_offset=-skew) as fake:
        fake.add_workflow(1, start=False, previous="FAILED", previous_completed_at=fake.now() - timedelta(seconds=3))
        after = datetime.now(timezone.utc)
        # The new run shows up 0.2 s after the trigger and ends 0.1 s later; polls 0.6 s apart. The first poll
        # (the previous result) has 0.2 s to land even on a loaded machine (with 50 ms it sometimes landed in
        # the run), and the second comes 0.3 s after the run has ended.
        fake.trigger(1, running=0.1, outcome="SUCCEEDED", shows_after=0.2)
        between = PollPolicy(initial=0.6, maximum=0.6, multiplier=1, jitter=0)
        async with fake.client() as client:
            status = await wait_for_completion(client, 1, poll=between, after=after, timeout=5)
            estimate = client.server_clock.estimate()
    assert status.disposition is Disposition.SUCCEEDED
    assert {r.lifecycle for r in fake.requests} == {"NOT_RUNNING"}  # the new run was never seen going
    assert len(fake.requests) >= 2  # the previous result was served first, and refused
    assert abs(estimate.offset + skew) <= estimate.error + 0.05


async def test_after_with_skewed_clock_in_a_fan_out() -> None:
    """wait_for_many reads the same client clock: fast runs under a 5 s skew are found, stale results refused."""
    async with FakePortable(clock_offset=-5) as fake:
        for wid in range(1, 6):
            fake.add_workflow(
                wid, start=False, previous="FAILED", previous_completed_at=fake.now() - timedelta(seconds=3)
            )
        after = datetime.now(timezone.utc)
        for wid in range(1, 6):
            fake.trigger(wid, running=0.05, outcome="SUCCEEDED", shows_after=0.05)
        async with fake.client() as client:
            results = await wait_for_many(client, range(1, 6), poll=BLIND, after=after, timeout=5)
    assert {wid: s.disposition for wid, s in results.items()} == dict.fromkeys(range(1, 6), Disposition.SUCCEEDED)


async def test_after_timeout_names_the_older_result(fake_portable: FakePortable) -> None:
    done = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)
    fake_portable.add_workflow(1, start=False, previous="SUCCEEDED", previous_completed_at=done)
    after = datetime.now(timezone.utc)
    start = time.monotonic()
    async with fake_portable.client() as client:
        with pytest.raises(WaitTimeoutError) as info:
            await wait_for_completion(client, 1, poll=FAST_POLL, after=after, timeout=0.3)
    assert time.monotonic() - start < 2
    message = str(info.value)
    assert "no run completed after " in message and " was seen" in message
    assert "the last result, SUCCEEDED at 2026-11-29T03:00:00Z, is older" in message
    assert info.value.after == after and info.value.workflow_id == 1
    assert info.value.last_status is not None and info.value.last_status.completed_at == done


async def test_after_ignores_the_date_of_answers_served_from_a_cache() -> None:
    """An HTTP cache keeps the stored answer's original Date (two hours old here) and says so with ``Age``.

    Its Dates tick along (distinct seconds, enough to pass the quorum for a large offset), so only the ``Age``
    header tells them from a server whose clock is two hours behind; taken at face value they would let the
    previous run's result, completed an hour ago, pass ``after``.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        previous = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
        body = f'{{"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": "{previous}"}}'
        date = email.utils.formatdate(time.time() - 7200, usegmt=True)
        head = f"HTTP/1.1 200 OK\r\nDate: {date}\r\nAge: 7200\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n{body}".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with PortableClient("k" * 24, base_url=url) as client:
            with pytest.raises(WaitTimeoutError, match="is older"):
                await wait_for_completion(
                    client, 1, poll=PollPolicy(initial=0.2, maximum=0.2), after=datetime.now(timezone.utc), timeout=4
                )
            assert client.server_clock.estimate().samples == 0
    finally:
        server.close()
        await server.wait_closed()
