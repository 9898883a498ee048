"""Point 1 of issue 12: triggers on one connection in one triggerer share one reference-counted client."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psutil  # type: ignore[import-untyped]  # a dependency of Airflow, without type hints
import pytest
from conftest import FAST, run_trigger

import portable_wait.airflow as pw_airflow
from portable_wait import PortableClient
from portable_wait.airflow import PortableWorkflowTrigger
from portable_wait.testing import FakePortable


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[PortableClient]:
    """Every PortableClient the Airflow integration creates, in order."""
    made: list[PortableClient] = []

    class Recorded(PortableClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pw_airflow, "PortableClient", Recorded)
    return made


def is_closed(client: PortableClient) -> bool:
    return " closed " in repr(client)


async def test_airflow_triggers_in_one_loop_share_one_client(fake: FakePortable, clients: list[PortableClient]) -> None:
    for wid in (1, 2, 3):
        fake.add_workflow(wid, running=0.3)
    payloads = await asyncio.gather(*(run_trigger(PortableWorkflowTrigger([wid], poll=FAST)) for wid in (1, 2, 3)))
    assert [p["status"] for p in payloads] == ["success"] * 3
    assert len(clients) == 1
    assert is_closed(clients[0])  # closed once the last trigger ended
    assert not pw_airflow._SHARED
    # Another wait later in the same loop gets a fresh client: the closed one is never handed out again.
    fake.add_workflow(4, running=0.05)
    assert (await run_trigger(PortableWorkflowTrigger([4], poll=FAST)))["status"] == "success"
    assert len(clients) == 2 and is_closed(clients[1])


async def test_airflow_triggers_on_other_connections_or_settings_get_their_own_client(
    fake: FakePortable, clients: list[PortableClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PORTABLE_OTHER",
        f'{{"conn_type": "portable", "host": "{fake.base_url}", "password": "{fake.api_key}"}}',
    )
    for wid in (1, 2, 3):
        fake.add_workflow(wid, running=0.2)
    await asyncio.gather(
        run_trigger(PortableWorkflowTrigger([1], poll=FAST)),
        run_trigger(PortableWorkflowTrigger([2], "portable_other", poll=FAST)),
        run_trigger(PortableWorkflowTrigger([3], poll=FAST, max_concurrency=3)),
    )
    assert len(clients) == 3


async def test_airflow_shared_client_shares_the_429_pause(fake: FakePortable) -> None:
    for wid in (1, 2, 3):
        fake.add_workflow(wid, running=2.0)
    start = fake.elapsed()
    fake.add_fault("429", between=(start + 0.3, start + 30), times=1, retry_after=0.6)
    await asyncio.gather(*(run_trigger(PortableWorkflowTrigger([wid], poll=FAST)) for wid in (1, 2, 3)))
    limited = next(r for r in fake.requests if r.status == 429)
    # One trigger drew the 429; the client-wide pause held back the other triggers' polls too.
    during = [r for r in fake.requests if limited.time + 0.05 < r.time < limited.time + 0.5]
    assert during == []
    assert {r.workflow_id for r in fake.requests if r.time > limited.time + 0.6} == {1, 2, 3}


async def test_airflow_shared_client_closes_when_the_last_trigger_is_cancelled(
    fake: FakePortable, clients: list[PortableClient]
) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, running=60)
    tasks = [asyncio.create_task(run_trigger(PortableWorkflowTrigger([wid], poll=FAST))) for wid in (1, 2)]
    while {r.workflow_id for r in fake.requests} != {1, 2}:  # noqa: ASYNC110 - a server we do not own
        await asyncio.sleep(0.02)
    assert len(clients) == 1
    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    assert not is_closed(clients[0])  # the other trigger still uses it
    polled = len(fake.requests_for(2))
    await asyncio.sleep(0.3)
    assert len(fake.requests_for(2)) > polled  # and it still polls through it
    tasks[1].cancel()
    await asyncio.gather(tasks[1], return_exceptions=True)
    assert is_closed(clients[0])
    assert not pw_airflow._SHARED


def client_connections(port: int) -> int:
    """Open TCP connections from this process to the fake server's port (the server's own sockets excluded)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def test_airflow_forty_mapped_triggers_hold_at_most_max_concurrency_connections(fake: FakePortable) -> None:
    ids = list(range(1, 41))
    for wid in ids:
        fake.add_workflow(wid, running=1.0)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, client_connections(fake.port))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # Mapped sensors: one trigger per workflow, all on the same connection with the same settings.
        payloads = await asyncio.gather(
            *(run_trigger(PortableWorkflowTrigger([wid], poll=FAST, max_concurrency=4)) for wid in ids)
        )
    finally:
        stop.set()
        sampler.join()
    assert all(p["status"] == "success" for p in payloads)
    assert 0 < peak <= 4


async def test_airflow_five_triggers_on_one_workflow_cost_about_one(fake: FakePortable) -> None:
    fake.add_workflow(1, running=1.5)
    await run_trigger(PortableWorkflowTrigger([1], poll=FAST))
    alone = len(fake.requests_for(1))
    fake.add_workflow(2, running=1.5)
    await asyncio.gather(*(run_trigger(PortableWorkflowTrigger([2], poll=FAST)) for _ in range(5)))
    together = len(fake.requests_for(2))
    assert together <= 1.3 * alone, f"five triggers sent {together} requests, one sent {alone}"
