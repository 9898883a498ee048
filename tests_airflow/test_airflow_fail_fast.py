"""Point 5 of issue 12: ``fail_fast`` ends a wait at the first failure, reporting the others' last statuses."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred
from conftest import FAST, run_trigger

from portable_wait import PollPolicy
from portable_wait.airflow import PortableWorkflowSensor, PortableWorkflowTrigger
from portable_wait.testing import FakePortable


async def test_airflow_fail_fast_ends_at_the_first_failure(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.2, outcome="FAILED", errors=["Snowflake: warehouse suspended"])
    fake.add_workflow(2, running=60)
    fake.add_workflow(3, pending=60)
    start = time.monotonic()
    payload = await run_trigger(PortableWorkflowTrigger([1, 2, 3], poll=FAST, deadline=time.time() + 120))
    assert time.monotonic() - start < 20  # the slow ones take a minute; the wait ended with the failure
    results = payload["results"]
    assert payload["status"] == "failure"
    assert results["1"]["outcome"] == "FAILED"
    assert (results["2"]["outcome"], results["2"]["lifecycle"]) == ("UNFINISHED", "RUNNING")
    assert (results["3"]["outcome"], results["3"]["lifecycle"]) == ("UNFINISHED", "PENDING")
    assert results["2"]["records"]["extracted"] > 0  # the last status seen, with its progress
    assert "Snowflake: warehouse suspended" in payload["message"]
    assert "workflow 2: UNFINISHED" in payload["message"] and "last seen RUNNING" in payload["message"]
    assert payload["counts"] == {"FAILED": 1, "UNFINISHED": 2}
    with pytest.raises(AirflowException, match="warehouse suspended") as raised:
        PortableWorkflowSensor(task_id="wait", workflow_ids=[1, 2, 3]).execute_complete({}, payload)
    assert not isinstance(raised.value, AirflowSensorTimeout)


async def test_airflow_fail_fast_on_a_permanent_error(fake: FakePortable) -> None:
    fake.add_workflow(2, running=60)
    start = time.monotonic()
    payload = await run_trigger(PortableWorkflowTrigger([404404, 2], poll=FAST))  # 404404 does not exist
    assert time.monotonic() - start < 20
    assert payload["results"]["404404"]["error"]["type"] == "WorkflowNotFoundError"
    assert payload["results"]["2"]["outcome"] == "UNFINISHED"


async def test_airflow_without_fail_fast_waits_for_all(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.1, outcome="FAILED", errors=["bad rows"])
    fake.add_workflow(2, running=0.8)
    payload = await run_trigger(PortableWorkflowTrigger([1, 2], poll=FAST, fail_fast=False))
    assert payload["results"]["1"]["outcome"] == "FAILED"
    assert payload["results"]["2"]["outcome"] == "SUCCEEDED"


async def test_airflow_fail_fast_still_reports_every_timeout(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, running=60)
    payload = await run_trigger(PortableWorkflowTrigger([1, 2], poll=FAST, deadline=time.time() + 0.5, timeout=600))
    assert {r["outcome"] for r in payload["results"].values()} == {"TIMEOUT"}
    with pytest.raises(AirflowSensorTimeout):
        PortableWorkflowSensor(task_id="wait", workflow_ids=[1, 2]).execute_complete({}, payload)


@pytest.mark.parametrize("fail_fast", [True, False])
def test_airflow_sensor_passes_fail_fast_to_its_trigger(fake: FakePortable, fail_fast: bool) -> None:
    sensor = PortableWorkflowSensor(task_id="wait", workflow_ids=[1], poll=PollPolicy(**FAST), fail_fast=fail_fast)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    trigger = deferred.value.trigger
    assert isinstance(trigger, PortableWorkflowTrigger) and trigger.fail_fast is fail_fast


def test_airflow_poke_mode_fails_fast(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05, outcome="FAILED", errors=["bad rows"])
    fake.add_workflow(2, running=60)
    time.sleep(0.2)
    with pytest.raises(AirflowException, match="bad rows") as raised:
        PortableWorkflowSensor(task_id="w", workflow_ids=[1, 2], deferrable=False).poke({})
    assert "workflow 2: UNFINISHED" in str(raised.value)
    patient = PortableWorkflowSensor(task_id="w", workflow_ids=[1, 2], deferrable=False, fail_fast=False)
    assert patient.poke({}) is False  # 1 failed, but 2 is still running: keep poking


def test_airflow_sensor_rejects_a_non_bool_fail_fast() -> None:
    with pytest.raises(TypeError, match="fail_fast"):
        PortableWorkflowSensor(task_id="w", workflow_ids=[1], fail_fast="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fail_fast"):
        PortableWorkflowTrigger([1], fail_fast=1)  # type: ignore[arg-type]
