"""The exception tree, and the pure mapping from an HTTP response to an exception.

::

    PortableError                      base of everything portable-wait raises on purpose
    ├── PortableAPIError               an HTTP error answer; .status_code, .message, .retry_after
    │   ├── AuthenticationError        401: no valid API key
    │   ├── PermissionDeniedError      403: the key may not see this workflow, or the plan lacks the feature
    │   └── WorkflowNotFoundError      404: no workflow with that ID
    ├── TransportError                 connection failed, reset or timed out (no HTTP answer); .transient
    ├── InvalidResponseError           a 200 whose body is not a workflow status (.transient: not JSON / cut short)
    ├── WorkflowFailedError            the workflow finished with disposition FAILED; .status
    └── WaitTimeoutError               the wait's own timeout passed (also a TimeoutError); .last_status, .after

Every exception has ``.workflow_id`` (None where no workflow is concerned). Messages never contain the API key:
server-provided text is decoded first (JSON, UTF-8), then redacted by the client's `Redactor` (every encoding,
see ``_redact``), then cut. No exception raised by the library has an aiohttp or pydantic error on
``__cause__`` or ``__context__``: their text and repr can hold the key or the raw body.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING

from ._redact import Redactor, live_redactor

if TYPE_CHECKING:
    from ._models import WorkflowStatus

__all__ = [
    "AuthenticationError",
    "InvalidResponseError",
    "PermissionDeniedError",
    "PortableAPIError",
    "PortableError",
    "TransportError",
    "WaitTimeoutError",
    "WorkflowFailedError",
    "WorkflowNotFoundError",
    "error_from_response",
    "is_transient",
    "parse_retry_after",
]

_MAX_MESSAGE = 300


class PortableError(Exception):
    """Base class of every error portable-wait raises about Portable or a wait."""

    workflow_id: int | None

    def __init__(self, message: str, *, workflow_id: int | None = None) -> None:
        # Defence in depth: the client redacts server text where it arrives; this catches an error built from a
        # status made elsewhere (a test double, user code) while a client with that key is alive.
        super().__init__(live_redactor().text(message))
        self.workflow_id = workflow_id

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions with keyword-only arguments do not pickle by default; fan-out users ship them across
        # processes (multiprocessing, Airflow), so keep them picklable.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[PortableError], args: tuple[object, ...], state: dict[str, object]) -> PortableError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class PortableAPIError(PortableError):
    """Portable answered with an HTTP error status.

    Attributes:
        status_code: The HTTP status code.
        message: The server's ``message`` (or the start of its body when it sent no JSON).
        retry_after: Seconds the server asked us to wait (``Retry-After``), if it said.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        workflow_id: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f" for workflow {workflow_id}" if workflow_id is not None else ""
        super().__init__(f"Portable API answered HTTP {status_code}{where}: {message}", workflow_id=workflow_id)
        self.status_code = status_code
        self.message = live_redactor().text(message)
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True for answers worth retrying: 408, 429 and 5xx."""
        return self.status_code in (408, 429) or self.status_code >= 500


class AuthenticationError(PortableAPIError):
    """401: the API key is missing, wrong or revoked. Check ``PORTABLE_API_KEY``."""


class PermissionDeniedError(PortableAPIError):
    """403: the key is valid but may not read this workflow (or the plan does not include the API)."""


class WorkflowNotFoundError(PortableAPIError):
    """404: no workflow with this ID is visible to the key."""


class TransportError(PortableError):
    """No HTTP answer: the connection failed, was reset, or the request timed out.

    Attributes:
        transient: True (ridden out and retried) unless the client has never had an answer from the server
            and its ``first_contact_timeout`` has passed: then the address is more likely wrong than down.
    """

    def __init__(self, message: str, *, workflow_id: int | None = None, transient: bool = True) -> None:
        super().__init__(message, workflow_id=workflow_id)
        self.transient = transient


class InvalidResponseError(PortableError):
    """Portable answered 200 with a body that is not a workflow status.

    Attributes:
        transient: True when the body was not JSON or was cut short (a proxy's HTML page, a dropped
            connection), which is retried; False when it was JSON of the wrong shape, which is not.
    """

    def __init__(self, message: str, *, workflow_id: int | None = None, transient: bool = False) -> None:
        super().__init__(message, workflow_id=workflow_id)
        self.transient = transient


class WorkflowFailedError(PortableError):
    """The workflow's run finished with disposition FAILED.

    Attributes:
        status: The final `WorkflowStatus`; its ``errors`` (and each resource's) say why.
    """

    workflow_id: int

    def __init__(self, status: WorkflowStatus) -> None:
        errors = status.all_errors()
        detail = "; ".join(errors[:10]) if errors else "Portable reported no error message"
        if len(errors) > 10:
            detail += f"; and {len(errors) - 10} more"
        super().__init__(f"workflow {status.id} failed: {detail}", workflow_id=status.id)
        self.status = status


if sys.version_info >= (3, 11):
    _TimeoutBase = TimeoutError
else:

    class _TimeoutBase(TimeoutError, asyncio.TimeoutError):
        """Before 3.11, ``asyncio.TimeoutError`` (what ``asyncio.wait_for`` raises, so what 3.10 code catches) is
        not the builtin ``TimeoutError``; from 3.11 it is. A wait's timeout is both on 3.10 too, so
        ``except asyncio.TimeoutError`` catches it on every version."""


class WaitTimeoutError(PortableError, _TimeoutBase):
    """The wait's ``timeout`` passed before the workflow finished.

    When the wait had ``after`` and saw only a result older than it (the previous run's, so the run waited for
    never showed up), the message says so: "no run completed after T was seen; the last result, SUCCEEDED at
    T0, is older".

    Attributes:
        timeout: The wait's timeout, in seconds.
        last_status: The last status seen, or None if no poll had answered yet.
        after: The wait's ``after``, or None.
    """

    workflow_id: int

    def __init__(
        self,
        workflow_id: int,
        timeout: float,
        last_status: WorkflowStatus | None,
        *,
        after: datetime | None = None,
    ) -> None:
        if last_status is None:
            seen = " (no status received)"
        elif after is not None and last_status.lifecycle.value == "NOT_RUNNING":
            # A NOT_RUNNING status ends a wait unless it is older than `after`: this one was.
            done = last_status.completed_at
            last = (
                f"{last_status.disposition.value} at {_when(done)}, is older"
                if done is not None
                else f"{last_status.disposition.value} with no completion time, is not a run after it"
            )
            seen = f": no run completed after {_when(after)} was seen; the last result, {last}"
        else:
            seen = f" (last seen {last_status.lifecycle.value})"
        super().__init__(f"workflow {workflow_id} did not finish within {timeout:g} s{seen}", workflow_id=workflow_id)
        self.timeout = timeout
        self.last_status = last_status
        self.after = after


def _when(moment: datetime) -> str:
    try:
        utc = moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # an error message must never raise: show the moment as given
        return moment.isoformat()
    text = utc.isoformat(timespec="seconds" if utc.microsecond == 0 else "milliseconds")
    return text.replace("+00:00", "Z")


def is_transient(error: BaseException) -> bool:
    """Return True if ``error`` may go away by itself (worth retrying or riding out)."""
    return isinstance(error, (PortableAPIError, TransportError, InvalidResponseError)) and bool(error.transient)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_BY_STATUS: dict[int, type[PortableAPIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: WorkflowNotFoundError,
}


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    workflow_id: int | None = None,
    now: datetime | None = None,
    redactor: Redactor | None = None,
) -> PortableAPIError:
    """Map a non-2xx answer to the matching `PortableAPIError` subclass. Pure: no I/O.

    ``redactor`` removes the API key from the server's message after it is decoded and before it is cut.
    """
    cls = _BY_STATUS.get(status_code, PortableAPIError)
    return cls(
        status_code,
        _server_message(status_code, body, redactor or Redactor()),
        workflow_id=workflow_id,
        retry_after=parse_retry_after(headers.get("Retry-After"), now),
    )


def _server_message(status_code: int, body: bytes, redactor: Redactor) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        # Decoded before redaction: JSON escapes (\/, \u003d) are gone, so is no form of the key left unseen.
        text = payload["message"]
    elif payload is None and text.lstrip().startswith("<"):
        text = "an HTML page instead of JSON (a proxy or load balancer answered?)"
    text = redactor.excerpt(" ".join(text.split()), _MAX_MESSAGE)
    if not text:
        try:
            text = HTTPStatus(status_code).phrase
        except ValueError:
            text = "no message"
    return text
