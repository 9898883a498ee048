from __future__ import annotations

import asyncio
import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from portable_wait import (
    AuthenticationError,
    Disposition,
    Lifecycle,
    PermissionDeniedError,
    PortableAPIError,
    PortableError,
    TransportError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from portable_wait._errors import error_from_response, is_transient, parse_retry_after


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, WorkflowNotFoundError),
        (400, PortableAPIError),
        (429, PortableAPIError),
        (500, PortableAPIError),
    ],
)
def test_errors_map_status_to_class(status: int, cls: type[PortableAPIError]) -> None:
    error = error_from_response(status, {}, b'{"message": "nope"}', workflow_id=7)
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "nope"
    assert error.workflow_id == 7
    assert "HTTP" in str(error) and "workflow 7" in str(error) and "nope" in str(error)


@pytest.mark.parametrize(
    ("status", "transient"), [(400, False), (401, False), (404, False), (408, True), (429, True), (503, True)]
)
def test_errors_transient_classification(status: int, transient: bool) -> None:
    assert is_transient(error_from_response(status, {}, b"")) is transient


def test_errors_message_from_html_and_empty_bodies() -> None:
    html = error_from_response(502, {}, b"<html><body>Bad Gateway</body></html>")
    assert "HTML" in html.message
    empty = error_from_response(503, {}, b"")
    assert empty.message == "Service Unavailable"
    long = error_from_response(500, {}, b"x" * 5000)
    assert len(long.message) < 400


def test_errors_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None
    error = error_from_response(429, {"Retry-After": "12"}, b"")
    assert error.retry_after == 12


def _status(disposition: str = "FAILED", errors: list[str] | None = None) -> WorkflowStatus:
    return WorkflowStatus.model_validate(
        {"id": 5, "lifecycle": "NOT_RUNNING", "disposition": disposition, "errors": errors or []}
    )


def test_errors_workflow_failed_carries_status_and_messages() -> None:
    error = WorkflowFailedError(_status(errors=["source timed out", "second"]))
    assert error.workflow_id == 5
    assert error.status.disposition is Disposition.FAILED
    assert "source timed out" in str(error) and "second" in str(error)
    assert "no error message" in str(WorkflowFailedError(_status()))


def test_errors_wait_timeout_is_a_timeout_error() -> None:
    status = WorkflowStatus.model_validate({"id": 5, "lifecycle": "RUNNING", "disposition": "NONE"})
    error = WaitTimeoutError(5, 2.5, status)
    assert isinstance(error, TimeoutError) and isinstance(error, PortableError)
    # What `except asyncio.TimeoutError` catches: one class with TimeoutError on 3.11+, a distinct one on 3.10.
    assert isinstance(error, asyncio.TimeoutError)
    assert error.last_status is not None and error.last_status.lifecycle is Lifecycle.RUNNING
    assert "2.5 s" in str(error) and "RUNNING" in str(error)


def test_errors_wait_timeout_says_it_saw_only_results_older_than_after() -> None:
    after = datetime(2026, 11, 29, 4, 5, 6, tzinfo=timezone.utc)
    older = WorkflowStatus.model_validate(
        {"id": 5, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": "2026-11-29T03:59:00Z"}
    )
    error = WaitTimeoutError(5, 60, older, after=after)
    assert str(error) == (
        "workflow 5 did not finish within 60 s: no run completed after 2026-11-29T04:05:06Z was seen; "
        "the last result, SUCCEEDED at 2026-11-29T03:59:00Z, is older"
    )
    assert (error.workflow_id, error.last_status, error.after) == (5, older, after)
    never_ran = WorkflowStatus.model_validate({"id": 5, "lifecycle": "NOT_RUNNING", "disposition": "NONE"})
    assert "no run completed after 2026-11-29T04:05:06Z was seen" in str(WaitTimeoutError(5, 1, never_ran, after=after))
    # A wait that saw the run going, or had no after=, times out as before.
    running = WorkflowStatus.model_validate({"id": 5, "lifecycle": "RUNNING", "disposition": "NONE"})
    assert (
        str(WaitTimeoutError(5, 60, running, after=after))
        == "workflow 5 did not finish within 60 s (last seen RUNNING)"
    )
    assert WaitTimeoutError(5, 60, older).after is None
    assert "older" not in str(WaitTimeoutError(5, 60, older))


def test_errors_wait_timeout_message_never_raises_on_unrepresentable_moments() -> None:
    # Before datetime.min once in UTC: astimezone() raises OverflowError; the message must still build.
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    odd = WorkflowStatus.model_construct(
        id=5, lifecycle=Lifecycle.NOT_RUNNING, disposition=Disposition.SUCCEEDED, completed_at=early
    )
    error = WaitTimeoutError(5, 1, odd, after=early)
    assert "SUCCEEDED at 0001-01-01T00:00:00+01:00" in str(error)


def test_errors_transport_error_is_transient_unless_told() -> None:
    assert is_transient(TransportError("reset"))
    assert not is_transient(TransportError("never reached", transient=False))


@pytest.mark.parametrize(
    "error",
    [
        WorkflowFailedError(_status(errors=["x"])),
        WaitTimeoutError(5, 1.0, None),
        WaitTimeoutError(5, 1.0, None, after=datetime(2026, 1, 1, tzinfo=timezone.utc)),
        TransportError("never reached", workflow_id=3, transient=False),
        AuthenticationError(401, "Unauthorized", workflow_id=3),
        TransportError("reset", workflow_id=3),
    ],
)
def test_errors_pickle_round_trip(error: PortableError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.workflow_id == error.workflow_id
