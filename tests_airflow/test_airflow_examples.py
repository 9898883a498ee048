"""Point 4 of issue 12: both example DAGs end to end (``dag.test()``) against the fake Portable server.

Each scenario is the one ``after`` exists for: the previous run SUCCEEDED, and the new run shows up a moment
late. Without ``after`` the DAGs would succeed at once on the old result.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from portable_wait.testing import FakePortable

EXAMPLES = Path(__file__).parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"portable_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def state(run: object) -> str:
    return str(getattr(run, "state", "")).replace("DagRunState.", "").lower()


def previous_success(fake: FakePortable, ids: list[int]) -> None:
    for wid in ids:
        fake.add_workflow(
            wid,
            start=False,
            previous="SUCCEEDED",
            previous_completed_at=datetime.now(timezone.utc) - timedelta(hours=2),
        )


def xcom(run: Any, task_id: str) -> dict[str, Any]:
    """The sensor's XCom, as stored in the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.run_id == run.run_id, XComModel.task_id == task_id, XComModel.key == "return_value"
            )
        ).one()
        value: dict[str, Any] = XComModel.deserialize_value(row)
        return value


def new_runs_taken(run: Any, task_id: str, since: datetime) -> bool:
    """True if every record the sensor returned is of a run completed after ``since``, not the previous run."""
    results = xcom(run, task_id)["results"]
    return bool(results) and all(datetime.fromisoformat(r["completed_at"]) >= since for r in results.values())


def test_airflow_example_dag_waits_for_the_runs_it_triggered(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example("airflow_dag")
    ids: list[int] = example.WORKFLOWS
    previous_success(fake, ids)
    started = datetime.now(timezone.utc)

    def start_syncs(workflow_ids: list[int]) -> None:  # Portable shows each new run a moment after the trigger
        for wid in workflow_ids:
            fake.trigger(wid, running=0.6, shows_after=0.3)

    monkeypatch.setattr(example, "start_syncs", start_syncs)
    run = example.dag.test()
    assert state(run) == "success"
    assert new_runs_taken(run, "wait_for_all", started)  # the new runs' results, not the previous SUCCEEDED
    mapped = sorted(
        ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "wait_for_each" and ti.map_index >= 0
    )
    assert mapped == [f"workflow {wid}" for wid in ids]  # not 0/1/2


def test_airflow_example_dag_fails_when_a_triggered_run_fails(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example("airflow_dag")
    ids: list[int] = example.WORKFLOWS
    previous_success(fake, ids)

    def start_syncs(workflow_ids: list[int]) -> None:
        for wid in workflow_ids:
            outcome = "FAILED" if wid == ids[1] else "SUCCEEDED"
            fake.trigger(wid, running=0.4, shows_after=0.3, outcome=outcome, errors=["Destination rejected the load"])

    monkeypatch.setattr(example, "start_syncs", start_syncs)
    run = example.dag.test()
    assert state(run) == "failed"  # the previous SUCCEEDED was not taken for the new, failed run


def test_airflow_scheduled_example_waits_for_this_intervals_run(fake: FakePortable) -> None:
    example = load_example("airflow_dag_scheduled")
    ids: list[int] = example.WORKFLOWS
    previous_success(fake, ids)
    started = datetime.now(timezone.utc)
    for wid in ids:  # Portable's own schedule started the runs; they show up a moment late
        fake.trigger(wid, running=0.6, shows_after=0.3)
    run = example.dag.test()
    assert state(run) == "success"
    assert new_runs_taken(run, "wait_for_this_hours_syncs", started)


def test_airflow_scheduled_example_fails_when_this_intervals_run_fails(fake: FakePortable) -> None:
    example = load_example("airflow_dag_scheduled")
    ids: list[int] = example.WORKFLOWS
    previous_success(fake, ids)
    fake.trigger(ids[0], running=0.4, shows_after=0.3, outcome="FAILED", errors=["Source credentials expired"])
    fake.trigger(ids[1], running=0.4, shows_after=0.3)
    run = example.dag.test()
    assert state(run) == "failed"
