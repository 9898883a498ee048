"""Airflow, the DAG starts the syncs: wait for *those* runs (needs ``pip install 'portable-wait[airflow]'``).

Set the connection once, outside any DAG file, e.g. as an environment variable of the scheduler, workers and
triggerer:

    AIRFLOW_CONN_PORTABLE_DEFAULT='{"conn_type": "portable", "password": "<your API key>"}'

``after`` is what makes the wait correct: right after a trigger, Portable's status endpoint can still show the
*previous* run, finished and SUCCEEDED. The ``trigger_syncs`` task returns the moment it started the syncs, and
both sensors take it as ``after``: an older result is never taken for the new run. (For syncs that run on
Portable's own schedule, see ``airflow_dag_scheduled.py``.)

Two ways to fan out over several workflows, both shown here:

* one sensor with many IDs: one trigger waits on all of them; the task fails at the first workflow that does not
  succeed (``fail_fast``), naming it and its errors; the XCom holds every outcome;
* a mapped sensor, one task instance per workflow, labelled with its workflow ID: each is retried, timed and
  shown on its own. In the triggerer, all of them share one client for the connection.

While deferred, neither occupies a worker slot: the waiting runs in the triggerer's event loop.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from portable_wait.airflow import PortableWorkflowSensor

WORKFLOWS = [568971, 568972, 568973]
log = logging.getLogger(__name__)


def start_syncs(workflow_ids: list[int]) -> None:
    """Start the syncs. Replace this with however you start them: Portable's API, an HTTP operator, a webhook."""
    log.info("start Portable workflows %s now", workflow_ids)


with DAG(
    dag_id="portable_wait_example",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["portable"],
) as dag:

    @task
    def trigger_syncs() -> str:
        """Start the syncs; return when, as the sensors' ``after``."""
        triggered_at = datetime.now(timezone.utc)  # taken first, so that a run that ends at once still counts
        start_syncs(WORKFLOWS)
        return triggered_at.isoformat()

    triggered = trigger_syncs()
    wait_for_all = PortableWorkflowSensor(
        task_id="wait_for_all",
        workflow_ids=WORKFLOWS,
        after=triggered,  # the trigger's time, from its task's XCom
        timeout=2 * 3600,  # an absolute deadline from the task's first start, kept across deferrals
    )
    wait_for_each = PortableWorkflowSensor.partial(task_id="wait_for_each", after=triggered, timeout=2 * 3600).expand(
        workflow_ids=WORKFLOWS
    )
    wait_for_all >> wait_for_each
