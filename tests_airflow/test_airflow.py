"""portable_wait.airflow against real Airflow 3 and the fake Portable server."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from random import Random

import pytest
from airflow.sdk import Connection, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred
from conftest import FAST, run_trigger

from portable_wait import PollPolicy
from portable_wait.airflow import PortableHook, PortableWorkflowSensor, PortableWorkflowTrigger
from portable_wait.testing import FakePortable


def test_airflow_trigger_serialize_round_trip() -> None:
    trigger = PortableWorkflowTrigger(
        [3, 1, 3],
        "my_portable",
        deadline=1.9e9,
        after="2026-01-01T00:00:00+00:00",
        poll=FAST,
        max_concurrency=4,
        fail_fast=False,
        timeout=7200.0,
    )
    path, kwargs = trigger.serialize()
    assert path == "portable_wait.airflow.PortableWorkflowTrigger"
    assert kwargs == {
        "workflow_ids": [3, 1],
        "portable_conn_id": "my_portable",
        "deadline": 1.9e9,
        "after": "2026-01-01T00:00:00+00:00",
        "poll": FAST,
        "max_concurrency": 4,
        "fail_fast": False,
        "timeout": 7200.0,
    }
    json.dumps(kwargs)  # what Airflow stores must be plain data
    again = PortableWorkflowTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    # A trigger serialized by the previous version (no fail_fast, no timeout) still loads after an upgrade.
    old = {k: v for k, v in kwargs.items() if k not in ("fail_fast", "timeout")}
    assert PortableWorkflowTrigger(**old).fail_fast is True


def test_airflow_trigger_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        PortableWorkflowTrigger([0])
    with pytest.raises(ValueError, match="maximum"):
        PortableWorkflowTrigger([1], poll={**FAST, "maximum": 0.001})
    with pytest.raises(ValueError, match="timezone-aware"):
        PortableWorkflowTrigger([1], after="2026-01-01T00:00:00")


async def test_airflow_trigger_success(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.1)
    fake.add_workflow(2, running=0.2)
    payload = await run_trigger(PortableWorkflowTrigger([1, 2], poll=FAST, deadline=time.time() + 30))
    assert payload["status"] == "success"
    assert {k: v["outcome"] for k, v in payload["results"].items()} == {"1": "SUCCEEDED", "2": "SUCCEEDED"}
    assert payload["results"]["1"]["records"]["loaded"] == 1250


async def test_airflow_trigger_failure_carries_the_workflows_errors(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.1)
    fake.add_workflow(2, running=0.1, outcome="FAILED", errors=["Snowflake: warehouse suspended"])
    # Without fail_fast every workflow is waited for, and the message names only those that did not succeed
    # (with it, workflow 1 may still be running at the failure: tests_airflow/test_airflow_fail_fast.py).
    payload = await run_trigger(PortableWorkflowTrigger([1, 2], poll=FAST, fail_fast=False))
    assert payload["status"] == "failure"
    assert payload["results"]["2"]["outcome"] == "FAILED"
    assert "Snowflake: warehouse suspended" in payload["message"]
    assert "workflow 1" not in payload["message"]


async def test_airflow_trigger_timeout_uses_the_absolute_deadline(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    start = time.time()
    payload = await run_trigger(PortableWorkflowTrigger([1], poll=FAST, deadline=start + 0.5))
    assert 0.4 < time.time() - start < 3
    assert payload["results"]["1"]["outcome"] == "TIMEOUT"
    assert payload["results"]["1"]["error"]["type"] == "WaitTimeoutError"
    # A trigger re-created after a triggerer restart keeps the deadline: already past, it ends at once.
    start = time.time()
    payload = await run_trigger(PortableWorkflowTrigger([1], poll=FAST, deadline=start - 10))
    assert payload["results"]["1"]["outcome"] == "TIMEOUT"
    assert time.time() - start < 2


async def test_airflow_trigger_rides_out_an_outage_then_reports_it(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.8)
    fake.add_workflow(2, running=60)
    fake.outage(fake.elapsed() + 0.05, 0.4)
    payload = await run_trigger(PortableWorkflowTrigger([1], poll=FAST))
    assert payload["results"]["1"]["outcome"] == "SUCCEEDED"
    assert any(r.status == 503 for r in fake.requests)
    fake.add_fault("503")  # a lasting outage: reported once outage_tolerance is spent
    payload = await run_trigger(PortableWorkflowTrigger([2], poll={**FAST, "outage_tolerance": 0.3}))
    error = payload["results"]["2"]["error"]
    assert (error["type"], error["status_code"]) == ("PortableAPIError", 503)


async def test_airflow_trigger_bad_connection_is_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PORTABLE_DEFAULT", json.dumps({"conn_type": "portable", "host": "x"}))
    payload = await run_trigger(PortableWorkflowTrigger([1], poll=FAST))
    assert payload["status"] == "error"
    assert "no password" in payload["message"]


async def test_airflow_trigger_never_blocks_the_event_loop(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.5)
    fake.add_fault("slow", delay=0.2, times=2)
    lags: list[float] = []

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - start - 0.01)

    task = asyncio.create_task(probe())
    await run_trigger(PortableWorkflowTrigger([1], poll=FAST))
    task.cancel()
    assert max(lags) < 0.1


def test_airflow_sensor_defers_with_a_deadline(fake: FakePortable) -> None:
    sensor = PortableWorkflowSensor(task_id="wait", workflow_ids=[1, 2], timeout=600, poll=PollPolicy(**FAST))
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    trigger = deferred.value.trigger
    assert isinstance(trigger, PortableWorkflowTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert trigger.workflow_ids == [1, 2]
    assert trigger.deadline is not None and before + 600 <= trigger.deadline <= time.time() + 600


def test_airflow_sensor_execute_complete() -> None:
    sensor = PortableWorkflowSensor(task_id="wait", workflow_ids=1)
    ok = {"status": "success", "message": "workflow 1 succeeded", "results": {"1": {"outcome": "SUCCEEDED"}}}
    assert sensor.execute_complete({}, ok) == ok
    failed = {
        "status": "failure",
        "message": "workflow 1: FAILED: quota exceeded",
        "results": {"1": {"outcome": "FAILED"}},
    }
    with pytest.raises(AirflowException, match="quota exceeded"):
        sensor.execute_complete({}, failed)
    timed_out = {"status": "failure", "message": "workflow 1: TIMEOUT", "results": {"1": {"outcome": "TIMEOUT"}}}
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, timed_out)


def test_airflow_sensor_poke_mode(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.3)
    fake.add_workflow(2, start=False, previous="SUCCEEDED")
    after = datetime.now(timezone.utc)
    sensor = PortableWorkflowSensor(task_id="wait", workflow_ids=[1, 2], deferrable=False, after=after)
    assert sensor.poke({}) is False  # 1 is running; 2 shows the previous run, older than after
    fake.trigger(2, running=0.2)
    assert sensor.poke({}) is False
    time.sleep(0.5)
    done = sensor.poke({})
    assert isinstance(done, PokeReturnValue) and done.is_done
    fake.add_workflow(3, running=0.05, outcome="FAILED", errors=["bad rows"])
    time.sleep(0.1)
    with pytest.raises(AirflowException, match="bad rows"):
        PortableWorkflowSensor(task_id="w3", workflow_ids=3, deferrable=False).poke({})


async def test_airflow_poke_mode_returns_the_deferrable_paths_records(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05)
    fake.add_workflow(2, running=0.05)
    await asyncio.sleep(0.2)
    # As Airflow stores the event for execute_complete: JSON (a record's tuples become lists).
    deferred = json.loads(json.dumps((await run_trigger(PortableWorkflowTrigger([1, 2], poll=FAST)))["results"]))
    sensor = PortableWorkflowSensor(task_id="wait", workflow_ids=[1, 2], deferrable=False, poke_interval=0.05)
    poked = await asyncio.to_thread(sensor.execute, {})  # as a worker runs it: pokes until done, then the XCom
    assert poked["status"] == "success"
    assert poked["results"] == deferred
    assert poked["results"]["1"]["records"]["loaded"] == 1250


def test_airflow_hook_settings() -> None:
    class Conn:
        conn_id = "c"
        password = "k"
        host = ""
        port: int | None = None

    assert PortableHook.settings_from(Conn()) == ("k", None)  # None: the client's default, the public API
    Conn.host = "api.example.com"
    assert PortableHook.settings_from(Conn()) == ("k", "https://api.example.com")
    Conn.password = ""
    with pytest.raises(AirflowException, match="no password"):
        PortableHook.settings_from(Conn())


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("host.example.com", 8443, "https://host.example.com:8443"),
        ("https://host.example.com", 8443, "https://host.example.com:8443"),
        ("https://host.example.com/api", 8443, "https://host.example.com:8443/api"),
        ("host.example.com:8443", None, "https://host.example.com:8443"),
        ("https://host.example.com:8443", 8443, "https://host.example.com:8443"),
    ],
)
def test_airflow_hook_keeps_the_connections_port(host: str, port: int | None, expected: str) -> None:
    connection = Connection(conn_id="p", conn_type="portable", host=host, port=port, password="k")
    assert PortableHook.settings_from(connection) == ("k", expected)


def test_airflow_hook_port_from_a_connection_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PORTABLE_PORTED", "portable://:secret-key@portable.example.com:8443")
    client = PortableHook("portable_ported").get_client()
    assert client.base_url == "https://portable.example.com:8443"


def test_airflow_hook_rejects_a_port_that_contradicts_the_host() -> None:
    connection = Connection(
        conn_id="p", conn_type="portable", host="https://h.example.com:9000", port=8443, password="k"
    )
    with pytest.raises(AirflowException, match="keep one"):
        PortableHook.settings_from(connection)


@pytest.mark.parametrize("channel", ["401 json", "400 text", "errors", "disposition", "redirect lower"])
async def test_airflow_trigger_event_never_shows_an_echoed_key(channel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacker's server of tests/integration/test_secrets.py echoes the key back; the event holds none of it."""
    from tests.integration.test_secrets import CHANNELS, NASTY_KEY, EchoServer, leaked_pieces

    with EchoServer() as echo:
        echo.script, echo.rnd = CHANNELS[channel], Random(channel)
        connection = {"conn_type": "portable", "host": echo.base_url, "password": NASTY_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_PORTABLE_DEFAULT", json.dumps(connection))
        payload = await run_trigger(PortableWorkflowTrigger([7], poll=FAST, deadline=time.time() + 2))
    assert payload["results"]["7"]["outcome"] in ("FAILED", "ERROR", "UNKNOWN")
    text = json.dumps(payload)
    assert not leaked_pieces(text, NASTY_KEY), text
