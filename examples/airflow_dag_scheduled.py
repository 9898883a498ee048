"""Airflow, the syncs run on Portable's own schedule: wait for this interval's runs.

Portable starts these workflows every hour on the hour; this DAG runs on the same schedule and waits for the run
of *its* interval. ``after="{{ data_interval_end }}"`` (the moment the interval closed, which is when Portable
started the sync) makes a result completed before it, the previous hour's, never count for this hour's run: the
sensor waits until the new run shows up and ends. A run with no data interval (a manual run in Airflow 3) falls
back to when the DAG run was due (``dag_run.run_after``).

Set the connection as in ``airflow_dag.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from portable_wait.airflow import PortableWorkflowSensor

WORKFLOWS = [568971, 568972]

with DAG(
    dag_id="portable_wait_scheduled",
    schedule="0 * * * *",  # the same schedule as the workflows in Portable
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["portable"],
) as dag:
    PortableWorkflowSensor(
        task_id="wait_for_this_hours_syncs",
        workflow_ids=WORKFLOWS,
        after="{{ data_interval_end or dag_run.run_after }}",
        timeout=3600,  # the next hour's run would start then
    )
