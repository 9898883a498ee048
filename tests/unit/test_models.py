from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from portable_wait import Disposition, Lifecycle, ResourceStatus, WorkflowStatus

SAMPLES = Path(__file__).parent.parent / "samples"


def load(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_models_parse_running_sample() -> None:
    status = WorkflowStatus.model_validate_json(load("running.json"))
    assert status.id == 568971
    assert status.lifecycle is Lifecycle.RUNNING
    assert status.disposition is Disposition.NONE
    assert status.is_running
    assert status.completed_at is None
    assert status.resources[1] == ResourceStatus(name="contacts", extracted=40, analyzed=40, loaded=0, errors=())
    assert (status.records_extracted, status.records_analyzed, status.records_loaded) == (1240, 1140, 900)


def test_models_accept_lowercase_enums_null_lists_and_unknown_fields() -> None:
    status = WorkflowStatus.model_validate_json(load("succeeded_lowercase.json"))
    assert status.lifecycle is Lifecycle.NOT_RUNNING
    assert status.disposition is Disposition.SUCCEEDED
    assert status.errors == ()
    assert not status.is_running
    assert status.completed_at == datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=timezone.utc)
    assert not hasattr(status, "workspaceId")


def test_models_normalize_timezone_offsets_to_utc() -> None:
    status = WorkflowStatus.model_validate_json(load("failed.json"))
    assert status.completed_at is not None
    assert status.completed_at.utcoffset() == timedelta(0)
    assert status.completed_at.tzinfo is timezone.utc
    assert status.completed_at == datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)
    assert status.all_errors() == ["Destination rejected the load", "orders: column 'total' is not numeric"]


def test_models_missing_optional_fields_are_empty() -> None:
    status = WorkflowStatus.model_validate_json(load("never_ran.json"))
    assert status.resources == ()
    assert status.errors == ()
    assert status.completed_at is None
    assert status.disposition is Disposition.NONE


def test_models_naive_timestamp_is_taken_as_utc() -> None:
    status = WorkflowStatus.model_validate(
        {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": "2024-01-01T00:00:00"}
    )
    assert status.completed_at == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_models_accept_unbounded_counts() -> None:
    huge = 2**80
    body = {
        "id": 1,
        "lifecycle": "RUNNING",
        "disposition": "NONE",
        "resources": [{"name": "x", "extracted": huge, "analyzed": -5, "loaded": 0, "errors": []}],
    }
    status = WorkflowStatus.model_validate_json(json.dumps(body))
    assert status.resources[0].extracted == huge
    assert status.resources[0].analyzed == -5


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("lifecycle", "QUEUED", Lifecycle.UNKNOWN),
        ("disposition", "CANCELLED", Disposition.UNKNOWN),
        ("lifecycle", "Running", Lifecycle.RUNNING),
        ("lifecycle", "not-running", Lifecycle.NOT_RUNNING),
    ],
)
def test_models_map_unknown_and_oddly_cased_enum_values(field: str, value: str, expected: object) -> None:
    body: dict[str, Any] = {"id": 1, "lifecycle": "RUNNING", "disposition": "NONE", field: value}
    assert getattr(WorkflowStatus.model_validate(body), field) is expected


def test_models_unknown_enum_value_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="portable_wait")
    for _ in range(3):
        WorkflowStatus.model_validate({"id": 1, "lifecycle": "HIBERNATING", "disposition": "NONE"})
    assert sum("HIBERNATING" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"lifecycle": "RUNNING", "disposition": "NONE"},  # no id
        {"id": 1, "disposition": "NONE"},  # no lifecycle
        {"id": 1, "lifecycle": "RUNNING"},  # no disposition
        {"id": "1", "lifecycle": "RUNNING", "disposition": "NONE"},  # id as a string
        {"id": 1.5, "lifecycle": "RUNNING", "disposition": "NONE"},
        {"id": True, "lifecycle": "RUNNING", "disposition": "NONE"},
        {"id": 1, "lifecycle": 3, "disposition": "NONE"},
        {"id": 1, "lifecycle": "RUNNING", "disposition": "NONE", "errors": "boom"},
        {"id": 1, "lifecycle": "RUNNING", "disposition": "NONE", "errors": [1]},
        {"id": 1, "lifecycle": "RUNNING", "disposition": "NONE", "completedAt": "yesterday"},
        {"id": 1, "lifecycle": "RUNNING", "disposition": "NONE", "resources": [{"name": "x"}]},
        {
            "id": 1,
            "lifecycle": "RUNNING",
            "disposition": "NONE",
            "resources": [{"name": "x", "extracted": "1", "analyzed": 1, "loaded": 1}],
        },
    ],
)
def test_models_reject_what_cannot_be_a_status(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkflowStatus.model_validate_json(json.dumps(body))


def test_models_are_immutable() -> None:
    status = WorkflowStatus.model_validate_json(load("running.json"))
    with pytest.raises(ValidationError):
        status.lifecycle = Lifecycle.NOT_RUNNING  # type: ignore[misc]
    assert hash(status.resources[0]) == hash(status.resources[0])


def test_models_enum_str_is_the_value() -> None:
    assert str(Lifecycle.NOT_RUNNING) == "NOT_RUNNING"
    assert f"{Disposition.FAILED}" == "FAILED"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),
        ("2016-12-31T23:59:60.5+00:00", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),
        ("2016-12-31T23:59:60", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),
    ],
)
def test_models_leap_second_is_clamped_to_59(text: str, expected: datetime) -> None:
    body = {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": text}
    assert WorkflowStatus.model_validate_json(json.dumps(body)).completed_at == expected


@pytest.mark.parametrize("value", [1700000000, 1.7e9, "1700000000", " 1700000000.5 ", "-1", "1e9"])
def test_models_completed_at_numbers_and_numeric_strings_are_refused(value: object) -> None:
    body = {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": value}
    with pytest.raises(ValidationError, match="ISO 8601"):
        WorkflowStatus.model_validate_json(json.dumps(body))


async def test_models_unknown_value_warning_never_shows_a_live_key() -> None:
    from portable_wait import PortableClient

    key = "pk_live+AbC/dEf=GhI~jKl_mNo"
    logger = logging.getLogger("portable_wait")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        async with PortableClient(key):
            status = WorkflowStatus.model_validate({"id": 1, "lifecycle": f"x{key}y", "disposition": "NONE"})
    finally:
        logger.removeHandler(handler)
    assert status.lifecycle is Lifecycle.UNKNOWN
    assert len(lines) == 1 and "[redacted]" in lines[0] and key[:8] not in lines[0]


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59.999999+01:00"])
def test_models_refuse_completed_at_that_cannot_be_utc(stamp: str) -> None:
    # Valid ISO 8601, but before datetime.min once in UTC: nothing could compare or print it later.
    body = {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": stamp}
    with pytest.raises(ValidationError, match="outside the range a UTC timestamp can hold"):
        WorkflowStatus.model_validate(body)


def test_models_accept_the_earliest_utc_completed_at() -> None:
    body = {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": "0001-01-01T01:00:00+01:00"}
    status = WorkflowStatus.model_validate(body)
    assert status.completed_at == datetime(1, 1, 1, tzinfo=timezone.utc)
