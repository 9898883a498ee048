"""Point 6 of issue 12: the deadline after a slow look-up, timeout wording, payload size, missing connections."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from conftest import FAST, run_trigger

from portable_wait.airflow import FULL_RECORDS_MAX, PortableWorkflowSensor, PortableWorkflowTrigger
from portable_wait.testing import FakePortable


async def test_airflow_deadline_does_not_slip_by_the_connection_look_up(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_workflow(1, running=60)
    look_up = BaseHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def slow_look_up(cls: Any, conn_id: str) -> Any:  # a triggerer restarting with many triggers
        await asyncio.sleep(2.0)
        return await look_up(cls, conn_id)

    monkeypatch.setattr(BaseHook, "aget_connection", classmethod(slow_look_up))
    start = time.time()
    payload = await run_trigger(PortableWorkflowTrigger([1], poll=FAST, deadline=start + 2.5))
    ended = time.time() - start
    assert payload["results"]["1"]["outcome"] == "TIMEOUT"
    # Ends at the deadline (2.5 s), not 2 s of look-up after it (4.5 s).
    assert 2.4 < ended < 3.8, ended


async def test_airflow_timeout_message_shows_the_configured_timeout_and_the_time_waited(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    # The task first started 10 s ago with timeout=10.5: after a restart, 0.5 s are left.
    started = time.time() - 10
    trigger = PortableWorkflowTrigger([1], poll=FAST, deadline=started + 10.5, timeout=10.5)
    payload = await run_trigger(trigger)
    message = payload["message"]
    assert "timeout of 10.5 s" in message, message
    assert re.search(r"waited 1[01] s since the task first started", message), message
    assert "within 0.5 s" not in message and "last seen RUNNING" in message
    assert payload["results"]["1"]["error"]["message"] in message


async def test_airflow_a_thousand_workflows_make_a_small_event(fake: FakePortable) -> None:
    ids = list(range(1, 1001))
    for wid in ids:
        failed = wid in (17, 503)
        fake.add_workflow(
            wid, running=0.05, outcome="FAILED" if failed else "SUCCEEDED", errors=["bad rows"] if failed else ()
        )
    await asyncio.sleep(0.1)
    payload = await run_trigger(PortableWorkflowTrigger(ids, poll=FAST, max_concurrency=10, fail_fast=False))
    size = len(json.dumps(payload))
    assert size < 20_000, size  # 1,000 full records would be about 450 KB
    assert set(payload["results"]) == {"17", "503"}  # full records for what did not succeed
    assert "bad rows" in payload["results"]["17"]["errors"]
    assert payload["succeeded_ids"] == [wid for wid in ids if wid not in (17, 503)]
    assert payload["counts"] == {"SUCCEEDED": 998, "FAILED": 2}


async def test_airflow_small_fan_outs_keep_every_full_record(fake: FakePortable) -> None:
    ids = list(range(1, FULL_RECORDS_MAX + 1))
    for wid in ids:
        fake.add_workflow(wid, running=0.05)
    payload = await run_trigger(PortableWorkflowTrigger(ids, poll=FAST))
    assert len(payload["results"]) == FULL_RECORDS_MAX
    assert payload["message"] == f"all {FULL_RECORDS_MAX} workflows succeeded"


async def test_airflow_one_workflow_is_not_all_1_workflows(fake: FakePortable) -> None:
    fake.add_workflow(7, running=0.05)
    payload = await run_trigger(PortableWorkflowTrigger([7], poll=FAST))
    assert payload["message"] == "workflow 7 succeeded"


@pytest.mark.parametrize("deferrable", [True, False])
def test_airflow_missing_connection_fails_in_execute_before_deferring(deferrable: bool) -> None:
    sensor = PortableWorkflowSensor(
        task_id="wait", workflow_ids=[1], portable_conn_id="no_such_portable", deferrable=deferrable
    )
    with pytest.raises(AirflowException, match="no Airflow connection 'no_such_portable'") as raised:
        sensor.execute(context={})
    assert not isinstance(raised.value, TaskDeferred)
    assert "AIRFLOW_CONN_NO_SUCH_PORTABLE" in str(raised.value)


def test_airflow_connection_without_a_key_fails_in_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PORTABLE_DEFAULT", json.dumps({"conn_type": "portable", "host": "x"}))
    with pytest.raises(AirflowException, match="no password"):
        PortableWorkflowSensor(task_id="wait", workflow_ids=[1]).execute(context={})
