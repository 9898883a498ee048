"""The workflow status as Portable sends it: immutable pydantic models and enums. No I/O here.

Leniency, and where it stops (see the README's "What the models accept"):

* unknown fields are ignored; ``resources`` and ``errors`` may be missing or ``null`` (empty tuples);
* enum values are matched case-insensitively (the docs show ``not_running``, the spec ``NOT_RUNNING``);
* a lifecycle or disposition this version does not know becomes ``UNKNOWN`` (logged once per value) instead of
  failing the parse: a state Portable adds next year must not crash a two-hour wait. A waiter treats an unknown
  lifecycle as "still going" and an unknown final disposition as "not FAILED";
* ``completedAt`` is ``null`` or an ISO 8601 timestamp string (not a number, nor a string of digits: pydantic would
  read either as Unix time); one without an offset is taken as UTC, and every value is converted to UTC (one that
  cannot be, such as ``0001-01-01T00:00:00+01:00``, is refused: `InvalidResponseError`); a leap second
  (``23:59:60``) is clamped to the last microsecond of ``:59``, as Python's datetime has no second 60;
* counts are integers of any size or sign (the spec bounds them in neither);
* ids and counts must be JSON integers (not strings, floats or booleans).
"""

from __future__ import annotations

import enum
import logging
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from ._redact import live_redactor

__all__ = ["Disposition", "Lifecycle", "ResourceStatus", "WorkflowStatus", "status_from_json"]

logger = logging.getLogger("portable_wait")
_warned_values: set[tuple[str, str]] = set()


class _LenientEnum(str, enum.Enum):
    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        upper = value.strip().upper().replace("-", "_").replace(" ", "_")
        for member in cls:
            if member.value == upper:
                return member
        # The value is the server's: a proxy may have put the key there. Log (and remember) only a redacted,
        # bounded excerpt of it.
        shown = live_redactor().excerpt(value, 40)
        if (cls.__name__, shown) not in _warned_values and len(_warned_values) < 1000:
            _warned_values.add((cls.__name__, shown))
            logger.warning(
                "Portable sent %s %r, which this version of portable-wait does not know; treating it as UNKNOWN",
                cls.__name__.lower(),
                shown,
            )
        return cls["UNKNOWN"]

    def __str__(self) -> str:
        return str(self.value)


class Lifecycle(_LenientEnum):
    """Where a workflow is in its run. ``UNKNOWN`` stands for a value this version does not know."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    NOT_RUNNING = "NOT_RUNNING"
    UNKNOWN = "UNKNOWN"


class Disposition(_LenientEnum):
    """How the last run ended; ``NONE`` means the workflow has never run. ``UNKNOWN``: a value not known here."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    NONE = "NONE"
    UNKNOWN = "UNKNOWN"


def _none_to_empty(value: object) -> object:
    return () if value is None else value


_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_LEAP_SECOND = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}):60(?:[.,]\d+)?(?=[Zz+-]|$)")


def _timestamp_only(value: object) -> object:
    # pydantic would read a number, or a string of digits, as Unix time; the spec says a date-time string.
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        return _LEAP_SECOND.sub(r"\1:59.999999", value.strip(), count=1)
    raise ValueError("completedAt must be an ISO 8601 timestamp string or null")


def _in_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        # "0001-01-01T00:00:00+01:00" is valid ISO 8601 but before datetime.min in UTC: no code can compare
        # or print it, so it is refused here rather than crash a waiter later.
        raise ValueError("completedAt is outside the range a UTC timestamp can hold") from None


_Strings = Annotated[tuple[StrictStr, ...], BeforeValidator(_none_to_empty)]


class ResourceStatus(BaseModel):
    """Record counts and errors of one resource (table, stream) of a workflow's run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: StrictStr
    extracted: StrictInt
    analyzed: StrictInt
    loaded: StrictInt
    errors: _Strings = ()


class WorkflowStatus(BaseModel):
    """A workflow's status, as answered by ``GET /v2/workflows/{id}/status``.

    Attributes:
        id: The workflow's ID.
        lifecycle: PENDING, RUNNING or NOT_RUNNING (UNKNOWN for a value this version does not know).
        disposition: How the last run ended: SUCCEEDED, FAILED, or NONE if it never ran.
        resources: Per-resource record counts.
        errors: The errors of the run.
        completed_at: When the last run completed (timezone-aware), or None while running or if it never ran.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: StrictInt
    lifecycle: Lifecycle
    disposition: Disposition
    resources: Annotated[tuple[ResourceStatus, ...], BeforeValidator(_none_to_empty)] = ()
    errors: _Strings = ()
    completed_at: Annotated[datetime | None, BeforeValidator(_timestamp_only), AfterValidator(_in_utc)] = Field(
        default=None, alias="completedAt"
    )

    @property
    def is_running(self) -> bool:
        """True unless the lifecycle is NOT_RUNNING (an UNKNOWN lifecycle counts as running)."""
        return self.lifecycle is not Lifecycle.NOT_RUNNING

    @property
    def records_extracted(self) -> int:
        """Records extracted, summed over resources."""
        return sum(r.extracted for r in self.resources)

    @property
    def records_analyzed(self) -> int:
        """Records analyzed, summed over resources."""
        return sum(r.analyzed for r in self.resources)

    @property
    def records_loaded(self) -> int:
        """Records loaded, summed over resources."""
        return sum(r.loaded for r in self.resources)

    def all_errors(self) -> list[str]:
        """Return the workflow's errors followed by each resource's, prefixed with the resource name."""
        found = list(self.errors)
        found.extend(f"{r.name}: {e}" for r in self.resources for e in r.errors)
        return found


_validate_json = WorkflowStatus.__pydantic_validator__.validate_json


def status_from_json(body: bytes | str) -> WorkflowStatus:
    """Return ``WorkflowStatus.model_validate_json(body)``, without the wrapper pydantic puts around it.

    The wrapper (keyword handling for options not used here) measured about 1.5 µs per call, which every poll
    pays. Raises `pydantic.ValidationError` as the wrapper does.
    """
    status: WorkflowStatus = _validate_json(body)
    return status
