"""Airflow without a triggerer: the sensor in reschedule mode, holding a worker slot only while it polls.

With ``deferrable=False`` the sensor polls from the worker. ``mode="reschedule"`` frees the slot between polls:
each poll is a short run of the task, ``poke_interval`` seconds apart. The wait keeps the deferrable path's
semantics across those runs (Airflow 3.3's task state store carries it): ``after=`` still tells the previous
run's result from the new one, an outage of the API shorter than ``poll.outage_tolerance`` (600 s by default)
keeps the sensor waiting, and ``timeout`` is counted from the first poll. The XCom is the deferrable path's.

Set the connection as in ``airflow_dag.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from portable_wait.airflow import PortableWorkflowSensor

WORKFLOWS = [568971, 568972]

with DAG(
    dag_id="portable_wait_reschedule",
    schedule="0 * * * *",  # the same schedule as the workflows in Portable
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["portable"],
) as dag:
    PortableWorkflowSensor(
        task_id="wait_for_this_hours_syncs",
        workflow_ids=WORKFLOWS,
        after="{{ data_interval_end or dag_run.run_after }}",
        deferrable=False,
        mode="reschedule",
        poke_interval=60,  # seconds between polls; the worker slot is free in between
        timeout=3600,
    )
