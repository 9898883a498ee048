"""Airflow: wait for Portable syncs with the deferrable sensor (needs ``pip install 'portable-wait[airflow]'``).

Set the connection once, outside any DAG file, e.g. as an environment variable of the scheduler, workers and
triggerer:

    AIRFLOW_CONN_PORTABLE_DEFAULT='{"conn_type": "portable", "password": "<your API key>"}'

Two ways to fan out over several workflows, both shown here:

* one sensor with many IDs: one trigger waits on all of them with one client and one request budget; the task
  fails if any workflow does not succeed, naming each and its errors; the XCom holds every outcome;
* a mapped sensor, one task instance per workflow: each is retried, timed and shown on its own.

While deferred, neither occupies a worker slot: the waiting runs in the triggerer's event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from portable_wait.airflow import PortableWorkflowSensor

WORKFLOWS = [568971, 568972, 568973]

with DAG(
    dag_id="portable_wait_example",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["portable"],
) as dag:
    wait_for_all = PortableWorkflowSensor(
        task_id="wait_for_all",
        workflow_ids=WORKFLOWS,
        timeout=2 * 3600,  # an absolute deadline from the task's first start, kept across deferrals
        # after="{{ ti.xcom_pull(task_ids='trigger_sync') }}",  # when an upstream task started the syncs
    )
    wait_for_each = PortableWorkflowSensor.partial(task_id="wait_for_each", timeout=2 * 3600).expand(
        workflow_ids=WORKFLOWS
    )
    wait_for_all >> wait_for_each
