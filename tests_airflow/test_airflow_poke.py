"""Point 3 of issue 12: poke and reschedule modes wait with the deferrable path's semantics.

The poke-mode sensor judges each poll with the same `WaitState` as the trigger (through the hub's `poll_round`)
and carries it between pokes: on the instance in "poke" mode, in the task state store in "reschedule" mode,
where every poke is a new run of the task (``dag.test()`` builds a new sensor object for each).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from conftest import FAST, run_trigger
from test_airflow_examples import load_example, new_runs_taken, previous_success, state

from portable_wait import PollPolicy
from portable_wait.airflow import PortableWorkflowSensor, PortableWorkflowTrigger
from portable_wait.testing import FakePortable

DEFAULT_TOLERANCE = PollPolicy().outage_tolerance


def poke_sensor(ids: list[int], **kwargs: Any) -> PortableWorkflowSensor:
    kwargs.setdefault("poke_interval", 0.2)
    return PortableWorkflowSensor(task_id="wait", workflow_ids=ids, deferrable=False, **kwargs)


def test_airflow_poke_mode_rides_out_an_outage_then_succeeds(fake: FakePortable) -> None:
    # A 5 s outage of 503s with the default outage tolerance (600 s): the deferrable path rides it out, and so
    # must poke mode. Before, the first poke inside the outage failed the task.
    assert DEFAULT_TOLERANCE > 5.0
    fake.add_workflow(1, running=7.0)
    fake.outage(fake.elapsed(), 5.0)
    payload = poke_sensor([1]).execute({})
    assert payload["status"] == "success"
    assert payload["results"]["1"]["outcome"] == "SUCCEEDED"
    answered = [r.status for r in fake.requests_for(1)]
    assert answered.count(503) >= 4  # several pokes met the outage and kept waiting
    assert answered[-1] == 200


def test_airflow_poke_mode_fails_on_an_outage_longer_than_the_tolerance(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_fault("503")  # a lasting outage
    sensor = poke_sensor([1], poll=PollPolicy(**{**FAST, "outage_tolerance": 1.5}))
    with pytest.raises(AirflowException, match="503") as raised:
        sensor.execute({})
    assert not isinstance(raised.value, AirflowSensorTimeout)
    assert "workflow 1: ERROR" in str(raised.value)
    assert len(fake.requests_for(1)) > 4  # not the first failed poke: the pokes within the tolerance waited


def test_airflow_poke_mode_fails_at_once_on_a_permanent_error(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    sensor = poke_sensor([1, 404_404])  # the second does not exist: a 404 is not an outage
    with pytest.raises(AirflowException, match="404") as raised:
        sensor.poke({})
    assert "workflow 1: UNFINISHED" in str(raised.value)  # fail_fast, as on the deferrable path


def test_airflow_poke_mode_keeps_after_across_pokes(fake: FakePortable) -> None:
    fake.add_workflow(1, start=False, previous="SUCCEEDED")
    after = datetime.now(timezone.utc)
    sensor = poke_sensor([1], after=after)
    for _ in range(3):
        assert sensor.poke({}) is False  # the previous run's SUCCEEDED, completed before after: refused
        time.sleep(0.05)
    # The new run starts and ends between two pokes: never seen running, found by its completion time.
    fake.trigger(1, running=0.05)
    time.sleep(0.3)
    done = sensor.poke({})
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert isinstance(done.xcom_value, dict)
    record = done.xcom_value["results"]["1"]
    assert datetime.fromisoformat(record["completed_at"]) >= after


def test_airflow_poke_mode_carries_the_outage_clock_across_pokes(fake: FakePortable) -> None:
    # Each poke alone is inside the tolerance; together they are not. A sensor that started the outage clock
    # anew at each poke would wait forever.
    fake.add_workflow(1, running=60)
    fake.add_fault("503")
    sensor = poke_sensor([1], poll=PollPolicy(**{**FAST, "outage_tolerance": 1.0}))
    assert sensor.poke({}) is False
    time.sleep(1.1)
    with pytest.raises(AirflowException, match="503"):
        sensor.poke({})


async def test_airflow_poke_mode_failure_reads_as_the_deferrable_paths(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05, outcome="FAILED", errors=["Snowflake: warehouse suspended"])
    fake.add_workflow(2, running=0.05)
    await asyncio.sleep(0.2)
    deferred = await run_trigger(PortableWorkflowTrigger([1, 2], poll=FAST, fail_fast=False))
    with pytest.raises(AirflowException) as raised:
        poke_sensor([1, 2], fail_fast=False).poke({})
    assert str(raised.value) == f"Portable workflows did not succeed:\n{deferred['message']}"


def test_airflow_poke_mode_timeout_reports_the_records(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    with pytest.raises(AirflowSensorTimeout, match="did not finish within the sensor's timeout of 1 s"):
        poke_sensor([1], timeout=1).execute({})


def test_airflow_poke_mode_starts_a_new_wait_at_each_execute(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05)
    time.sleep(0.2)
    sensor = poke_sensor([1])
    assert sensor.execute({})["status"] == "success"
    fake.trigger(1, running=60)
    fake.add_fault("503")
    sensor.poll = PollPolicy(**{**FAST, "outage_tolerance": 0.5})
    with pytest.raises(AirflowException, match="503"):
        sensor.execute({})  # the first wait's finished record was not carried over


# -- reschedule mode: every poke is a new run of the task, with a new sensor object ------------------------


class Pokes:
    """Spy on the sensor's pokes under ``dag.test()``: which object, what it returned or raised."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fake: FakePortable, on_first: Any = None) -> None:
        self.objects: list[int] = []
        self.results: list[object] = []
        original = PortableWorkflowSensor.poke

        def poke(sensor: PortableWorkflowSensor, context: Any) -> Any:
            if not self.objects and on_first is not None:
                on_first()
            self.objects.append(id(sensor))
            try:
                result = original(sensor, context)
            except Exception as error:
                self.results.append(error)
                raise
            self.results.append(result)
            return result

        monkeypatch.setattr(PortableWorkflowSensor, "poke", poke)


def reschedule_example(tolerance: float) -> Any:
    example = load_example("airflow_dag_reschedule")
    task = example.dag.task_dict["wait_for_this_hours_syncs"]
    assert (task.mode, task.deferrable) == ("reschedule", False)
    task.poke_interval = 0.2
    task.poll = PollPolicy(**{**FAST, "outage_tolerance": tolerance})
    return example


def test_airflow_reschedule_mode_rides_out_an_outage_and_keeps_after(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = reschedule_example(DEFAULT_TOLERANCE)
    ids: list[int] = example.WORKFLOWS
    previous_success(fake, ids)
    started = datetime.now(timezone.utc)

    def first_poke() -> None:  # the new runs show up late, and the API is down for 6 s meanwhile
        for wid in ids:
            fake.trigger(wid, running=2.0, shows_after=1.0)
        fake.outage(fake.elapsed(), 6.0)

    pokes = Pokes(monkeypatch, fake, first_poke)
    run = example.dag.test()
    assert state(run) == "success"
    assert new_runs_taken(run, "wait_for_this_hours_syncs", started)  # not the previous SUCCEEDED
    assert any(r.status == 503 for r in fake.requests)
    # Each poke (its requests retried by the client for a few seconds) is a run of its own, with a new sensor
    # object: the first met the outage and rescheduled (how many more did depends on the machine's load).
    assert pokes.results[0] is False
    assert len(set(pokes.objects)) == len(pokes.objects) > 1


def test_airflow_reschedule_mode_keeps_the_outage_clock_across_tries(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a wait carried between reschedules sees the outage outlast its tolerance: a sensor starting afresh
    # at every reschedule rides out any outage until the sensor's timeout (the AirflowSensorTimeout refused below).
    example = reschedule_example(1.5)
    example.dag.task_dict["wait_for_this_hours_syncs"].timeout = 30
    for wid in example.WORKFLOWS:
        fake.add_workflow(wid, running=600)
    fake.add_fault("503")
    pokes = Pokes(monkeypatch, fake)
    run = example.dag.test()
    assert state(run) == "failed"
    assert all(result is False for result in pokes.results[:-1])
    error = pokes.results[-1]
    assert isinstance(error, AirflowException) and not isinstance(error, AirflowSensorTimeout)
    assert "503" in str(error)
    assert len(set(pokes.objects)) == len(pokes.objects) > 1


def test_airflow_reschedule_mode_without_a_state_store_still_waits(fake: FakePortable) -> None:
    # Airflow before 3.3 has no task state store: the sensor falls back to starting each try's wait afresh.
    fake.add_workflow(1, running=0.4)
    sensor = poke_sensor([1], mode="reschedule")
    assert sensor.poke({}) is False
    time.sleep(0.6)
    done = sensor.poke({})
    assert isinstance(done, PokeReturnValue) and done.is_done


def test_airflow_reschedule_example_is_plain(fake: FakePortable) -> None:
    example = load_example("airflow_dag_reschedule")
    task = example.dag.task_dict["wait_for_this_hours_syncs"]
    assert task.poll == PollPolicy()  # the example keeps the default tolerance
    assert task.timeout == timedelta(hours=1).total_seconds()
