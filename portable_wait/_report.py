"""One outcome of a wait as a name and as JSON: shared by the CLI's ``--json`` lines and the Airflow trigger."""

from __future__ import annotations

from typing import Any, TypeVar

from ._errors import PortableAPIError, PortableError, WaitTimeoutError, WorkflowFailedError
from ._models import WorkflowStatus
from ._redact import Redactor, redact_payload

__all__ = ["outcome_name", "outcome_status", "outcome_to_json", "redact_event"]
T = TypeVar("T")


def redact_event(payload: T, key: str | None = None) -> T:
    """Return an Airflow event's JSON payload with ``key`` (the connection's) and every live client's removed.

    Server text is redacted where the client parses it; this is the last check before the payload leaves the
    triggerer (into Airflow's database and task logs). It needs no Airflow import, so the main suite tests the
    function Airflow's `_event_payload` calls; ``key`` works after the client is closed (its key unregistered).
    """
    return redact_payload(payload, Redactor(key) if key else None)


def outcome_name(outcome: WorkflowStatus | PortableError) -> str:
    """Return the final disposition (SUCCEEDED, FAILED, NONE, UNKNOWN), or TIMEOUT, or ERROR."""
    if isinstance(outcome, WorkflowStatus):
        return outcome.disposition.value
    if isinstance(outcome, WorkflowFailedError):
        return "FAILED"
    if isinstance(outcome, WaitTimeoutError):
        return "TIMEOUT"
    return "ERROR"


def outcome_status(outcome: WorkflowStatus | PortableError) -> WorkflowStatus | None:
    """Return the status an outcome carries: the final one, the FAILED one, or the last seen before a timeout."""
    if isinstance(outcome, WorkflowStatus):
        return outcome
    if isinstance(outcome, WorkflowFailedError):
        return outcome.status
    if isinstance(outcome, WaitTimeoutError):
        return outcome.last_status
    return None


def outcome_to_json(wid: int, outcome: WorkflowStatus | PortableError) -> dict[str, Any]:
    """Return a JSON-ready record: ``workflow_id``, ``outcome``, the status fields, and ``error`` if any."""
    record: dict[str, Any] = {"workflow_id": wid, "outcome": outcome_name(outcome)}
    status = outcome_status(outcome)
    if status is not None:
        record.update(
            lifecycle=status.lifecycle.value,
            disposition=status.disposition.value,
            completed_at=status.completed_at.isoformat() if status.completed_at else None,
            records={
                "extracted": status.records_extracted,
                "analyzed": status.records_analyzed,
                "loaded": status.records_loaded,
            },
            errors=status.all_errors(),
            resources=[r.model_dump() for r in status.resources],
        )
    if isinstance(outcome, PortableError) and not isinstance(outcome, WorkflowFailedError):
        error: dict[str, Any] = {"type": type(outcome).__name__, "message": str(outcome)}
        if isinstance(outcome, PortableAPIError):
            error["status_code"] = outcome.status_code
        record["error"] = error
    return record
