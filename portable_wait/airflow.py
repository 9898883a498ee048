"""Airflow integration: a ``portable`` connection, a deferrable sensor and its trigger.

Install with ``pip install 'portable-wait[airflow]'`` (Airflow 3.x). Nothing else in portable-wait imports
this module, so the library works without Airflow.

* **Connection** ``portable`` (default id ``portable_default``): *host* is the API's base URL (empty: the
  public API), *password* the API key. Define it in the UI, a secrets backend, or an environment variable
  (``AIRFLOW_CONN_PORTABLE_DEFAULT='{"conn_type": "portable", "password": "..."}'``); no key lives in a DAG file.
* `PortableWorkflowTrigger` waits on one or many workflow IDs inside the triggerer's event loop with the
  library's own fan-out (no blocking call), and fires one `TriggerEvent` with every workflow's outcome as JSON.
  It serializes the workflow IDs, the connection id, the *absolute* deadline, ``after`` and the poll policy, so
  a triggerer restart resumes the same wait with the same deadline.
* `PortableWorkflowSensor` defers to the trigger (``deferrable=True``, the default) or pokes
  (``deferrable=False``); it fails the task with the workflows' own error messages, and its ``timeout`` is an
  absolute deadline fixed when the task first runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

try:
    from airflow.sdk import BaseHook, BaseSensorOperator
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError as exc:  # pragma: no cover - exercised only without Airflow
    raise ImportError("portable_wait.airflow needs Apache Airflow 3: pip install 'portable-wait[airflow]'") from exc

from ._airflow_provider import get_provider_info
from ._client import DEFAULT_BASE_URL, PortableClient
from ._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_POLL, PollPolicy
from ._errors import PortableError
from ._fanout import wait_for_many
from ._models import WorkflowStatus
from ._report import outcome_name, outcome_status, outcome_to_json, redact_event
from ._validate import unique_workflow_ids

__all__ = [
    "PortableHook",
    "PortableWorkflowSensor",
    "PortableWorkflowTrigger",
    "get_provider_info",
]

TRIGGER_PATH = "portable_wait.airflow.PortableWorkflowTrigger"


class PortableHook(BaseHook):
    """Reads a ``portable`` connection: host = base URL (optional), password = API key."""

    conn_name_attr = "portable_conn_id"
    default_conn_name = "portable_default"
    conn_type = "portable"
    hook_name = "Portable"

    def __init__(self, portable_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.portable_conn_id = portable_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "port", "extra"],
            "relabeling": {"host": "Base URL", "password": "API key"},
            "placeholders": {"host": DEFAULT_BASE_URL},
        }

    @staticmethod
    def settings_from(connection: Any) -> tuple[str, str]:
        """Return (api_key, base_url) from a connection, with a clear error when the key is missing."""
        key = connection.password
        if not key:
            raise AirflowException(
                f"the Airflow connection {connection.conn_id!r} has no password: put the Portable API key there"
            )
        host = (connection.host or "").strip()
        if not host:
            return key, DEFAULT_BASE_URL
        if "://" not in host:
            host = f"https://{host}"
        return key, host

    def get_client(self, **kwargs: Any) -> PortableClient:
        """Return a `PortableClient` for this connection (blocking look-up: for workers, not the triggerer)."""
        key, base_url = self.settings_from(self.get_connection(self.portable_conn_id))
        return PortableClient(key, base_url=base_url, **kwargs)

    async def aget_client(self, **kwargs: Any) -> PortableClient:
        """Return a `PortableClient` for this connection, looked up without blocking the event loop."""
        getter = getattr(type(self), "aget_connection", None)
        if getter is not None:
            connection = await getter(self.portable_conn_id)
        else:  # pragma: no cover - older task SDKs
            connection = await asyncio.to_thread(self.get_connection, self.portable_conn_id)
        key, base_url = self.settings_from(connection)
        return PortableClient(key, base_url=base_url, **kwargs)


def _poll_to_dict(poll: PollPolicy) -> dict[str, float]:
    return {
        "initial": poll.initial,
        "maximum": poll.maximum,
        "multiplier": poll.multiplier,
        "jitter": poll.jitter,
        "outage_tolerance": poll.outage_tolerance,
    }


def _parse_after(after: datetime | str | None) -> datetime | None:
    if after is None or after == "":
        return None
    if isinstance(after, str):
        after = datetime.fromisoformat(after.replace("Z", "+00:00"))
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware (Airflow's logical dates are); got a naive datetime")
    return after


class PortableWorkflowTrigger(BaseTrigger):
    """Wait for Portable workflows in the triggerer; fire one event with every outcome.

    Args:
        workflow_ids: The workflows to wait on (one trigger can wait on many).
        portable_conn_id: The Airflow connection to use.
        deadline: Absolute deadline, Unix seconds (None: no limit). Past it, unfinished workflows are TIMEOUT.
        after: ISO timestamp: ignore results of runs completed before it (see the README's ``after=``).
        poll: `PollPolicy` fields as a dict.
        max_concurrency: Requests in flight at once for this trigger.

    The event's payload: ``{"status": "success" | "failure", "message": str, "results": {id: record}}``, each
    record as the CLI's ``--json`` lines (``outcome``, ``disposition``, ``errors``, ``error`` with the error's
    ``type`` and ``message``, ...).
    """

    def __init__(
        self,
        workflow_ids: Sequence[int],
        portable_conn_id: str = PortableHook.default_conn_name,
        deadline: float | None = None,
        after: str | None = None,
        poll: dict[str, float] | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        self.workflow_ids = unique_workflow_ids(workflow_ids)
        self.portable_conn_id = portable_conn_id
        self.deadline = deadline
        self.after = after
        self.poll = dict(poll) if poll is not None else _poll_to_dict(DEFAULT_POLL)
        self.max_concurrency = max_concurrency
        PollPolicy(**self.poll)  # fail at construction, not in the triggerer
        _parse_after(after)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_PATH,
            {
                "workflow_ids": list(self.workflow_ids),
                "portable_conn_id": self.portable_conn_id,
                "deadline": self.deadline,
                "after": self.after,
                "poll": dict(self.poll),
                "max_concurrency": self.max_concurrency,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        remaining = None if self.deadline is None else self.deadline - time.time()
        try:
            hook = PortableHook(self.portable_conn_id)
            client = await hook.aget_client(max_concurrency=self.max_concurrency)
            async with client:
                results = await wait_for_many(
                    client,
                    self.workflow_ids,
                    return_exceptions=True,
                    timeout=max(remaining, 1e-3) if remaining is not None else None,
                    after=_parse_after(self.after),
                    poll=PollPolicy(**self.poll),
                )
        except Exception as error:  # no client at all: a bad connection, say. Report it as an event too.
            message = f"{type(error).__name__}: {error}"
            yield TriggerEvent(redact_event({"status": "error", "message": message, "results": {}}))  # type: ignore[no-untyped-call]
            return
        records = {str(wid): outcome_to_json(wid, outcome) for wid, outcome in results.items()}
        failed = [r for r in records.values() if r["outcome"] != "SUCCEEDED"]
        yield TriggerEvent(  # type: ignore[no-untyped-call]
            redact_event(
                {
                    "status": "failure" if failed else "success",
                    "message": _summary(list(results.items())),
                    "results": records,
                },
                client,
            )
        )


def _summary(outcomes: list[tuple[int, WorkflowStatus | PortableError]]) -> str:
    lines = []
    for wid, outcome in outcomes:
        name = outcome_name(outcome)
        if name == "SUCCEEDED":
            continue
        status = outcome_status(outcome)
        errors = status.all_errors() if status is not None else []
        if isinstance(outcome, PortableError) and name != "FAILED":
            errors = [str(outcome)]
        lines.append(f"workflow {wid}: {name}" + (f": {'; '.join(errors)}" if errors else ""))
    return "\n".join(lines) if lines else f"all {len(outcomes)} workflows succeeded"


class PortableWorkflowSensor(BaseSensorOperator):
    """Wait until Portable workflows finish; fail with their own error messages if one does not succeed.

    Args:
        workflow_ids: One workflow ID or a list of them (templated).
        portable_conn_id: The ``portable`` connection. Default ``portable_default``.
        after: A timezone-aware datetime or ISO string (templated), e.g. when an upstream task triggered the
            sync: results of runs completed before it are never taken for the new run.
        deferrable: Defer to `PortableWorkflowTrigger` (default) instead of occupying a worker slot.
        poll: The `PollPolicy` used while deferred. Default ``PollPolicy()``.
        timeout: Seconds (or a timedelta) from the task's first start to give up: an absolute deadline, kept
            across deferral and triggerer restarts. Default: Airflow's sensor default.
        poke_interval: Seconds between pokes when ``deferrable=False``.

    Returns (XCom): ``{workflow_id: record}`` for every workflow, records as the CLI's ``--json`` lines.
    """

    template_fields: Sequence[str] = ("workflow_ids", "after")
    ui_color = "#c8e6c9"

    def __init__(
        self,
        *,
        workflow_ids: int | Sequence[int],
        portable_conn_id: str = PortableHook.default_conn_name,
        after: datetime | str | None = None,
        deferrable: bool = True,
        poll: PollPolicy | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30)
        super().__init__(**kwargs)
        self.workflow_ids = workflow_ids
        self.portable_conn_id = portable_conn_id
        self.after = after
        self.deferrable = deferrable
        self.poll = poll or DEFAULT_POLL
        self.max_concurrency = max_concurrency
        self._seen_active: set[int] = set()

    def _ids(self) -> list[int]:
        ids = self.workflow_ids
        if isinstance(ids, str):  # a rendered template
            ids = [int(part) for part in ids.replace(",", " ").replace("[", " ").replace("]", " ").split()]
        return unique_workflow_ids([ids] if isinstance(ids, int) else ids)

    def _after_iso(self) -> str | None:
        after = _parse_after(self.after)
        return after.isoformat() if after is not None else None

    def execute(self, context: Any) -> Any:  # noqa: RET503 - defer() raises TaskDeferred
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + self.timeout if self.timeout else None
        trigger = PortableWorkflowTrigger(
            self._ids(),
            self.portable_conn_id,
            deadline=deadline,
            after=self._after_iso(),
            poll=_poll_to_dict(self.poll),
            max_concurrency=self.max_concurrency,
        )
        # The trigger ends the wait itself at the deadline; Airflow's own trigger timeout is a backstop after it.
        backstop = timedelta(seconds=self.timeout + 60) if self.timeout else None
        self.defer(trigger=trigger, method_name="execute_complete", timeout=backstop)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return every record, or fail with the workflows' own errors."""
        if not event:
            raise AirflowException("the Portable trigger fired without an event")
        results: dict[str, Any] = event.get("results", {})
        if event.get("status") == "success":
            self.log.info("Portable: %s", event.get("message"))
            return results
        message = event.get("message", "unknown error")
        if results and all(r["outcome"] in ("SUCCEEDED", "TIMEOUT") for r in results.values()):
            raise AirflowSensorTimeout(f"Portable workflows did not finish in time:\n{message}")
        raise AirflowException(f"Portable workflows did not succeed:\n{message}")

    def poke(self, context: Any) -> bool:
        """One look at every workflow (``deferrable=False``): True when all are finished and succeeded."""
        ids = self._ids()
        after = _parse_after(self.after)
        statuses = asyncio.run(self._fetch(ids))
        failures = []
        finished = 0
        for wid, status in zip(ids, statuses, strict=True):
            if status.is_running:
                self._seen_active.add(wid)  # kept across pokes in "poke" mode; lost in "reschedule" mode
                continue
            stale = (
                after is not None
                and wid not in self._seen_active
                and (status.completed_at is None or status.completed_at < after)
            )
            if stale:
                continue
            finished += 1
            if status.disposition.value != "SUCCEEDED":
                errors = status.all_errors()
                failures.append(
                    f"workflow {wid}: {status.disposition.value}" + (f": {'; '.join(errors)}" if errors else "")
                )
        if failures:
            raise AirflowException("Portable workflows did not succeed:\n" + "\n".join(failures))
        self.log.info("Portable: %d of %d workflows finished", finished, len(ids))
        return finished == len(ids)

    async def _fetch(self, ids: list[int]) -> list[WorkflowStatus]:
        async with PortableHook(self.portable_conn_id).get_client(max_concurrency=self.max_concurrency) as client:
            return list(await asyncio.gather(*(client.get_workflow_status(wid) for wid in ids)))
