"""Chaos soak and rate-limit fan-out: every outcome right under faults, nothing leaked, few 429s; stray 429s do not
collapse a fan-out (issue 9).

The default sizes keep `make test` fast; `pytest -m slow` runs the larger versions.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
from collections.abc import Iterable

import pytest

from portable_wait import (
    Disposition,
    PollPolicy,
    RetryPolicy,
    WorkflowFailedError,
    WorkflowStatus,
    wait_for_many,
)
from portable_wait.testing import FakePortable, RequestRecord

SOAK_POLL = PollPolicy(initial=0.2, maximum=1.0, multiplier=1.5, jitter=0.3, outage_tolerance=20)
SOAK_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.1, retry_after_cap=1.0)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def max_in_window(records: Iterable[RequestRecord], window: float = 1.0) -> int:
    times = sorted(r.time for r in records)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def chaos_soak(count: int, outage_at: float, outage_for: float) -> None:
    fds_before = open_fds()
    rng = random.Random(7)
    expected: dict[int, str] = {}
    async with FakePortable(seed=11) as fake:
        for wid in range(1, count + 1):
            failed = rng.random() < 0.2
            fake.add_workflow(
                wid,
                pending=rng.uniform(0, 0.5),
                running=rng.uniform(0.3, 4.0),
                outcome="FAILED" if failed else "SUCCEEDED",
                errors=[f"failure of {wid}"] if failed else (),
            )
            expected[wid] = "FAILED" if failed else "SUCCEEDED"
        fake.add_fault("503", between=(outage_at, outage_at + outage_for))  # a full outage
        fake.add_fault("429", rate=0.01, retry_after=0)  # stray 429s: a gateway node restarting
        fake.add_fault("drop", rate=0.02)
        fake.add_fault("truncated", rate=0.01)
        fake.add_fault("slow", rate=0.02, delay=0.3)
        fake.add_fault("500", rate=0.04)
        fake.add_fault("502", rate=0.03)
        fake.add_fault("503", rate=0.03)
        async with fake.client(retry=SOAK_RETRY, max_concurrency=20, request_timeout=5) as client:
            results = await wait_for_many(client, expected, return_exceptions=True, poll=SOAK_POLL, timeout=60)
        faults = {r.fault for r in fake.requests}
    assert {"503", "drop", "truncated", "slow", "500", "502"} <= faults
    assert any(outage_at <= r.time < outage_at + outage_for and r.status == 503 for r in fake.requests)
    wrong = {}
    for wid, outcome in results.items():
        if expected[wid] == "SUCCEEDED":
            ok = isinstance(outcome, WorkflowStatus) and outcome.disposition is Disposition.SUCCEEDED
        else:
            ok = isinstance(outcome, WorkflowFailedError) and f"failure of {wid}" in str(outcome)
        if not ok:
            wrong[wid] = outcome
    assert not wrong, f"{len(wrong)} wrong outcomes, e.g. {list(wrong.items())[:3]}"
    assert len(results) == count
    # Nothing outlives the client and the server: no task, no socket (filterwarnings=error catches "Unclosed").
    await asyncio.sleep(0)
    gc.collect()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert open_fds() <= fds_before


async def test_soak_chaos_1000_workflows() -> None:
    await chaos_soak(1000, outage_at=1.5, outage_for=2.5)


@pytest.mark.slow
async def test_soak_chaos_5000_workflows_long_outage() -> None:
    await chaos_soak(5000, outage_at=3.0, outage_for=8.0)


async def rate_limited_fanout(count: int, server_limit: float, client_limit: float | None) -> FakePortable:
    rng = random.Random(3)
    async with FakePortable(rate_limit=server_limit) as fake:
        for wid in range(1, count + 1):
            fake.add_workflow(wid, running=rng.uniform(0.5, 3.0))
        poll = PollPolicy(initial=0.5, maximum=2.0, outage_tolerance=30)
        async with fake.client(retry=SOAK_RETRY, rate_limit=client_limit) as client:
            results = await wait_for_many(client, range(1, count + 1), poll=poll, timeout=60)
        assert all(s.disposition is Disposition.SUCCEEDED for s in results.values())
        assert len(results) == count
    return fake


async def test_soak_rate_limited_api_draws_a_handful_of_429s() -> None:
    fake = await rate_limited_fanout(200, server_limit=60, client_limit=None)
    limited = sum(r.status == 429 for r in fake.requests)
    assert limited <= 25, f"{limited} of {len(fake.requests)} requests were answered 429"


async def test_soak_client_rate_limit_is_never_exceeded() -> None:
    fake = await rate_limited_fanout(150, server_limit=1000, client_limit=40)
    busiest = max_in_window(fake.requests)
    assert busiest <= 40, f"{busiest} requests within one second"
    assert not any(r.status == 429 for r in fake.requests)


@pytest.mark.slow
async def test_soak_rate_limited_api_1000_workflows() -> None:
    fake = await rate_limited_fanout(1000, server_limit=50, client_limit=None)
    limited = sum(r.status == 429 for r in fake.requests)
    assert limited <= 0.01 * len(fake.requests) + 20


@pytest.mark.parametrize("share", [0.005, 0.01, 0.02])
@pytest.mark.parametrize("retry_after", [0, None], ids=["retry-after-0", "no-header"])
async def test_soak_stray_429s_do_not_collapse_a_fan_out(share: float, retry_after: int | None) -> None:
    # Issue 9's scenario: no real limit, a share of answers are 429 anyway. Before, most waits timed out.
    # How many requests the fan-out makes follows the CPU it gets (about 4,000 on an idle core, 750 on a sixth of
    # one), so the fault stream must draw its 429s early: seed 0 draws the first of a 0.5% share at request 41,
    # and the 400 waits make at least 400 requests however slow the machine. (Seed 9 drew it at request 670, and
    # a loaded machine ran the whole fan-out without a single 429: `limited > 0` failed with nothing wrong.)
    rng = random.Random(5)
    async with FakePortable(seed=0) as fake:
        for wid in range(1, 401):
            fake.add_workflow(wid, running=rng.uniform(0.5, 4.0))
        fake.add_fault("429", rate=share, retry_after=retry_after)
        retry = RetryPolicy(attempts=3, initial=0.05, maximum=0.2)
        async with fake.client(retry=retry, request_timeout=0.5) as client:
            poll = PollPolicy(initial=0.1, maximum=0.3)
            results = await wait_for_many(client, range(1, 401), poll=poll, timeout=60, return_exceptions=True)
            limited = client._pacer.rate_limited
    wrong = {wid: r for wid, r in results.items() if not isinstance(r, WorkflowStatus)}
    assert not wrong, f"{len(wrong)} of 400 waits failed, e.g. {list(wrong.items())[:3]}"
    assert all(r.disposition is Disposition.SUCCEEDED for r in results.values() if isinstance(r, WorkflowStatus))
    assert limited > 0 and limited == sum(r.status == 429 for r in fake.requests)


async def test_soak_rate_limited_api_learns_the_limit() -> None:
    # Demand far above a true 50 req/s sliding-window limit: after warm-up, 429s are rare.
    rng = random.Random(4)
    async with FakePortable(rate_limit=50) as fake:
        for wid in range(1, 301):
            fake.add_workflow(wid, running=rng.uniform(5.0, 6.0))
        poll = PollPolicy(initial=0.5, maximum=1.5, outage_tolerance=30)
        async with fake.client(retry=SOAK_RETRY) as client:
            results = await wait_for_many(client, range(1, 301), poll=poll, timeout=60)
            capacity = client._pacer.capacity
    assert all(s.disposition is Disposition.SUCCEEDED for s in results.values())
    after = [r for r in fake.requests if r.time >= 3.0]
    limited = sum(r.status == 429 for r in after)
    assert limited <= 0.05 * len(after), f"{limited} of {len(after)} requests after warm-up were answered 429"
    assert capacity is not None and 25 <= capacity <= 50
