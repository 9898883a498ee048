"""`PortableClient`: one pooled aiohttp session, a bearer token, typed errors and retries.

Every request goes through `PortableClient._exchange`, the one choke point where the concurrency bound, the
request budget, error mapping and redaction happen.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import socket
import ssl
import time
import warnings
import weakref
from types import TracebackType
from typing import Any

import aiohttp
from pydantic import ValidationError
from yarl import URL

from . import _retry
from ._clock import ServerClock
from ._config import (
    DEFAULT_FIRST_CONTACT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY,
    MAX_BODY_BYTES,
    MAX_CONCURRENCY_LIMIT,
    RetryPolicy,
)
from ._deadlines import RequestDeadlines
from ._errors import (
    InvalidResponseError,
    PortableAPIError,
    PortableError,
    TransportError,
    error_from_response,
    is_transient,
)
from ._hub import CLIENT_CLOSED, WaitHub
from ._models import WorkflowStatus, status_from_json
from ._pacing import Pacer
from ._redact import Redactor, register_key, unregister_key
from ._slots import Slots
from ._telemetry import ClientStats, ClientTelemetry, RequestTelemetry
from ._validate import check_int, check_seconds, check_timeout, check_workflow_id
from ._version import __version__

_OTHER_LOOP = "a PortableClient belongs to the event loop it was first used in; create one per loop"

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "DEFAULT_BASE_URL", "PortableClient"]

DEFAULT_BASE_URL = "https://api.portable.io"
API_KEY_ENV = "PORTABLE_API_KEY"
BASE_URL_ENV = "PORTABLE_BASE_URL"
USER_AGENT = f"portable-wait/{__version__}"
_UNSET: Any = object()
_EXCERPT = 40  # characters of a body shown in an error, after redaction
_CLEAN_CACHE = 10_000  # server strings remembered as holding no key (resource names repeat every poll)


class PortableClient:
    """An async client for Portable's workflow status endpoint.

    Use it as an async context manager; it owns one ``aiohttp.ClientSession`` whose keep-alive connection pool
    every request shares, and closes it on exit. Share one client between every waiter of a program: the pool,
    the concurrency bound and the request budget are the client's.

    Args:
        api_key: The Portable API key. Defaults to the ``PORTABLE_API_KEY`` environment variable. It is sent only
            as a bearer token to ``base_url``'s host and never shown in a repr, a log line or an exception.
        base_url: The API's root. ``http://`` is refused except for loopback hosts (tests, the fake server),
            so the key never crosses a network in clear text. A path is kept as a prefix, for a proxy
            (``https://gw.example.com/portable``); one ending in the API's own ``/v2`` is refused. None (the
            default) means the ``PORTABLE_BASE_URL`` environment variable when it is set and not blank, else
            ``https://api.portable.io``; an explicit argument always wins over the variable.
        request_timeout: Seconds one HTTP request may take, from sending it to reading the whole body.
            Default 30. One timer per client keeps it for every request in flight, checking every 1/16 of it
            (between every 10 ms and every second): a request is cut off at most that much late. (``timeout=`` is its
            deprecated old name, accepted with a ``DeprecationWarning`` until the next release: everywhere else
            ``timeout`` means a whole wait.)
        retry: How transient failures of one request are retried. Default ``RetryPolicy()``.
        max_concurrency: Requests in flight at once, across everything using this client; also the size of
            the connection pool. Default 10, at most 1,000 (`MAX_CONCURRENCY_LIMIT`).
        rate_limit: Requests per second across everything using this client (every waiter, every retry), or
            None for no fixed limit. A 429 pauses and slows down the client either way. Default None.
        first_contact_timeout: Seconds this client keeps trying a server that has never answered it, from its
            first request. Past that, with no HTTP answer ever received (any status counts), a connection
            failure raises a `TransportError` with ``transient=False`` that names the URL and the cause
            (connection refused, name not resolved, TLS error, timeout), and every wait fails with it instead
            of riding out ``PollPolicy.outage_tolerance``: a server never reached is more likely a wrong URL,
            port, DNS name or proxy than an outage. Once the server has answered, outages are ridden out as
            usual. None disables the rule. Default 30.

    The client also owns the wait hub (created on the first wait, closed with the client): every
    `wait_for_completion`, `wait_for_many` and `as_completed` through this client runs there, and waits on
    the same workflow share one poll stream.

    Raises:
        ValueError: No key was given and ``PORTABLE_API_KEY`` is unset or empty, ``PORTABLE_BASE_URL`` is not a
            usable URL (the message names the variable), or an argument is out of range.
        TypeError: An argument has the wrong type.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        rate_limit: float | None = None,
        first_contact_timeout: float | None = DEFAULT_FIRST_CONTACT_TIMEOUT,
        timeout: float = _UNSET,
    ) -> None:
        key = _resolve_key(api_key)
        self._base_url = _resolve_base_url(base_url)
        if timeout is not _UNSET:
            if request_timeout != DEFAULT_REQUEST_TIMEOUT:
                raise TypeError("pass request_timeout= only; timeout= is its deprecated old name")
            warnings.warn(
                "PortableClient(timeout=...) is deprecated; use request_timeout=... (timeout= will be removed in "
                "the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            request_timeout = timeout
        request_timeout = check_seconds(request_timeout, "request_timeout")
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        max_concurrency = check_int(max_concurrency, "max_concurrency", minimum=1, maximum=MAX_CONCURRENCY_LIMIT)
        self._headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        # The one place that knows the key, and turns every server-provided string into a redacted one before
        # anything else sees it: error messages, statuses' errors, Location, aiohttp's parser messages.
        self._redactor = Redactor(key)
        register_key(key)
        # Unregistered on aclose(), or when a client that was never closed is garbage-collected.
        self._unregister = weakref.finalize(self, unregister_key, key)
        self._clean: set[str] = set()
        self._timeout = request_timeout
        # One loop timer for every request's timeout, rather than aiohttp's one timer per request (see _deadlines).
        self._deadlines = RequestDeadlines(request_timeout)
        self._retry = retry
        self._max_concurrency = max_concurrency
        self._pacer = Pacer(rate_limit, max_pause=retry.retry_after_cap)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the session was made in
        self._slots: Slots | None = None  # max_concurrency requests in flight, made with the session
        self._closed = False
        self._in_flight = 0
        self._requests = 0
        self._prefix = f"{self._base_url}/v2/workflows/"
        self._hub: WaitHub | None = None
        self._first_contact_timeout = check_timeout(first_contact_timeout, "first_contact_timeout")
        self._first_try: float | None = None  # loop time of the first request sent
        self._answered = False  # any HTTP answer ever received from the server
        self._clock = ServerClock()
        self._telemetry = ClientTelemetry(self._base_url, pace=lambda: self._pacer.current_rate())

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._session else "not started")
        return (
            f"<PortableClient base_url={self._base_url!r} {state} in_flight={self._in_flight}"
            f"/{self._max_concurrency} requests={self._requests} {self._pacer!r}>"
        )

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._base_url

    @property
    def retry(self) -> RetryPolicy:
        """The request retry policy."""
        return self._retry

    @property
    def request_timeout(self) -> float:
        """Seconds one HTTP request may take."""
        return self._timeout

    @property
    def max_concurrency(self) -> int:
        """Requests in flight at once, at most."""
        return self._max_concurrency

    @property
    def server_clock(self) -> ServerClock:
        """Portable's clock as estimated from the ``Date`` of every answer; ``after=`` compares on it."""
        return self._clock

    @property
    def first_contact_timeout(self) -> float | None:
        """Seconds a server that has never answered is tried before waits fail (None: no limit)."""
        return self._first_contact_timeout

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (every try of every request)."""
        return self._requests

    def stats(self) -> ClientStats:
        """Return a snapshot of this client's requests, retries, 429s, waits and detection lag (see `ClientStats`)."""
        return self._telemetry.stats()

    async def __aenter__(self) -> PortableClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the wait hub and the connection pool. Safe to call twice.

        Waits still running through this client end with RuntimeError. Called from another event loop than the
        one the client was used in, it marks the client closed if that loop has ended (the connections that
        loop left open are not closed: Python warns of them when collected; close a client in its own loop),
        and raises RuntimeError if that loop is still running: close the client there.
        """
        owner = self._loop
        if owner is not None and owner is not asyncio.get_running_loop():
            if not owner.is_closed():
                raise RuntimeError(f"{_OTHER_LOOP}; close it in that loop")
            self._closed = True
            if self._hub is not None:
                self._hub.abandon()
        self._closed = True
        hub = self._hub
        if hub is not None:
            await hub.close()
        self._unregister()
        self._telemetry.close()
        self._deadlines.close()
        session, self._session = self._session, None
        if session is not None:
            if owner is not None and owner.is_closed():
                connector = session.connector
                session.detach()  # closing would schedule work on the ended loop
                if connector is not None:
                    await connector.close()  # its loop closed: only marks it closed
            else:
                await session.close()

    def _wait_hub(self) -> WaitHub:
        """Return the hub that runs this client's waits, starting it on first use."""
        hub = self._hub
        if hub is None:
            self._ensure_session()
            hub = self._hub = WaitHub(self)
        elif self._closed:
            raise RuntimeError(CLIENT_CLOSED)
        elif hub.loop is not asyncio.get_running_loop():
            raise RuntimeError(_OTHER_LOOP)
        return hub

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(CLIENT_CLOSED)
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            # aiohttp would fail later with "Event loop is closed", or hang if that loop runs in another thread.
            raise RuntimeError(_OTHER_LOOP)
        if self._session is None:
            self._loop = asyncio.get_running_loop()
            connector = aiohttp.TCPConnector(limit=self._max_concurrency, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(),  # none: request_timeout is kept by self._deadlines
                raise_for_status=False,
                auto_decompress=True,
            )
            self._slots = Slots(self._max_concurrency)
        return self._session

    async def get_workflow_status(self, workflow_id: int) -> WorkflowStatus:
        """Fetch a workflow's current status, retrying transient failures per the client's `RetryPolicy`.

        Args:
            workflow_id: A positive integer.

        Returns:
            The workflow's `WorkflowStatus`.

        Raises:
            AuthenticationError: 401, the key is not valid.
            PermissionDeniedError: 403.
            WorkflowNotFoundError: 404.
            PortableAPIError: Another HTTP error, after retries where it is transient.
            TransportError: Connection failures and timeouts, after retries.
            InvalidResponseError: A body that is not a workflow status (after retries if not JSON).
            TypeError, ValueError: ``workflow_id`` is not a positive int.
        """
        wid = check_workflow_id(workflow_id)
        first = await self._exchange(wid)
        if not isinstance(first, PortableError):
            return first
        if not is_transient(first):
            raise first
        return await _retry.retry_request(
            functools.partial(self._attempt, wid),
            self._retry,
            first,
            what=f"status request for workflow {wid}",
            on_retry=self._telemetry.retry,
        )

    async def _attempt(self, wid: int) -> WorkflowStatus:
        # Raised here (and in get_workflow_status), not where the answer is read: a traceback's frames then hold
        # no local bound to the raw body, the response or its headers, which error reporters that record locals
        # (Sentry) would show.
        outcome = await self._exchange(wid)
        if isinstance(outcome, PortableError):
            raise outcome
        return outcome

    async def _exchange(self, wid: int) -> WorkflowStatus | PortableError:
        """Make one request; return its status, or the error it ended in (never raised here)."""
        # This runs for every request: the common case (open session, same loop, a free slot, unpaced) reads few
        # attributes, makes no object of its own and awaits nothing but aiohttp.
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or loop is not self._loop or self._closed:
            session = self._ensure_session()  # opens it, or raises (closed, another loop)
        slots = self._slots
        assert slots is not None
        if not slots.try_take():
            await slots.take()
        try:
            pacer = self._pacer
            now = loop.time()
            if pacer.engaged:
                sent_at = await pacer.acquire()
                now = loop.time()
            else:
                sent_at = pacer.count_send(now)
            if self._closed:  # while this request waited for a slot or the pacer
                raise RuntimeError(CLIENT_CLOSED)
            # Timed from here: the exchange only, not the wait for a slot or the pacer.
            deadlines = self._deadlines
            deadline = deadlines.start(loop, now)  # raises only on misuse, before anything needs undoing
            self._in_flight += 1
            self._requests += 1
            if self._first_try is None:
                self._first_try = now
            sent = time.time()
            # Failures are built into `failure` and raised outside any except block, so no exception of ours has
            # aiohttp's error (whose repr shows the request headers, key included) on __cause__ or __context__.
            failure: PortableError | None = None
            status_code = 0  # until the whole answer has been read
            # What the exchange ended in without an answer, for telemetry: cleared before this frame is left, so
            # an error reporter that records locals never sees aiohttp's error (its repr shows the key).
            unanswered: BaseException | None = None
            probe: RequestTelemetry | None = None
            try:
                probe = self._telemetry.request(wid)
                try:
                    async with session.get(self._prefix + f"{wid}/status", allow_redirects=False) as response:
                        self._answered = True
                        headers = response.headers
                        self._clock.observe(headers.get("Date"), sent, time.time(), age=headers.get("Age"))
                        body: bytes | None
                        if _fits_unread(response, MAX_BODY_BYTES):
                            body = await response.read()  # the common case: exactly Content-Length bytes
                        else:
                            body = await _read_capped(response, MAX_BODY_BYTES)
                        status_code = response.status
                except asyncio.CancelledError:
                    if not deadlines.expired(deadline):
                        raise  # the caller's cancellation, not our timeout
                    raise asyncio.TimeoutError from None  # reported below
            except asyncio.TimeoutError as exc:
                unanswered = exc
                failure = self._transport_error(
                    f"status request for workflow {wid} timed out after {self._timeout:g} s",
                    wid,
                    f"no answer within the request timeout of {self._timeout:g} s",
                )
            except aiohttp.ClientPayloadError as exc:
                unanswered = exc
                failure = InvalidResponseError(
                    f"the status body for workflow {wid} was cut short ({self._describe(exc)})",
                    workflow_id=wid,
                    transient=True,
                )
            except aiohttp.ClientResponseError as exc:
                unanswered = exc
                parser = self._describe(exc.message, name=False)
                failure = self._transport_error(
                    f"bad HTTP answer for workflow {wid}: {exc.status} {parser}", wid, f"not an HTTP answer ({parser})"
                )
            except (aiohttp.ClientError, OSError) as exc:
                unanswered = exc
                detail = self._describe(exc)
                failure = self._transport_error(
                    f"could not reach Portable at {self._base_url} for workflow {wid}: {detail}",
                    wid,
                    f"{_connection_failure(exc)} ({detail})",
                )
            except BaseException as exc:  # the caller's cancellation, or a bug: recorded, then on its way
                unanswered = exc
                raise
            finally:
                deadlines.finish(deadline)
                self._in_flight -= 1
                try:
                    self._telemetry.request_done(probe, status_code or None, unanswered)
                finally:
                    unanswered = None
        finally:
            slots.give()
        if failure is not None:
            return failure
        if body is None:
            return InvalidResponseError(
                f"the answer for workflow {wid} (HTTP {status_code}) is longer than {MAX_BODY_BYTES:,} bytes, the most "
                "read (a status is a few KB): a proxy's error or an endless stream? Not kept",
                workflow_id=wid,
                transient=True,
            )
        if status_code != 200:
            error = self._error_from(status_code, headers, body, wid)
            if status_code == 429:
                pacer.on_rate_limited(error.retry_after, sent_at=sent_at)
            return error
        pacer.on_success(loop.time())
        return self._outcome_of(body, wid, headers.get("Content-Type", ""))

    def _describe(self, exc: object, *, name: bool = True) -> str:
        """Return an exception's (or a parser message's) text on one line, redacted, then cut: its type kept."""
        text = self._redactor.excerpt(" ".join(str(exc).split()), 200)
        if not name:
            return text
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _transport_error(self, message: str, wid: int, cause: str) -> TransportError:
        """Return the error for a request with no HTTP answer: transient, unless first contact has timed out."""
        limit = self._first_contact_timeout
        if self._answered or limit is None or self._first_try is None:
            return TransportError(message, workflow_id=wid)
        waited = asyncio.get_running_loop().time() - self._first_try
        if waited < limit:
            return TransportError(message, workflow_id=wid)
        return TransportError(
            f"never reached Portable at {self._base_url}: {cause}; no answer at all in the {waited:.0f} s since "
            f"this client's first request (first_contact_timeout={limit:g} s). Check the base URL, its host "
            "name and port, and any proxy or TLS settings",
            workflow_id=wid,
            transient=False,
        )

    def _error_from(self, status_code: int, headers: Any, body: bytes, wid: int) -> PortableAPIError:
        if 300 <= status_code < 400:
            target = self._redactor.excerpt(headers.get("Location", "?"), 200)
            return PortableAPIError(
                status_code, f"redirect to {target} not followed (the API key is never sent on)", workflow_id=wid
            )
        return error_from_response(status_code, headers, body, workflow_id=wid, redactor=self._redactor)

    def _parse(self, body: bytes, wid: int, content_type: str = "") -> WorkflowStatus:
        """Return the status in ``body``; raise `InvalidResponseError` if it is none."""
        outcome = self._outcome_of(body, wid, content_type)
        if isinstance(outcome, InvalidResponseError):
            raise outcome
        return outcome

    def _outcome_of(self, body: bytes, wid: int, content_type: str) -> WorkflowStatus | InvalidResponseError:
        # pydantic's ValidationError holds the whole body (its text shows input values): only a list of
        # problems, built without input, leaves the except block.
        problems: list[Any] | None = None
        try:
            status = status_from_json(body)
        except ValidationError as exc:
            problems = list(exc.errors(include_url=False, include_input=False, include_context=False))
        if problems is not None:
            return self._invalid(body, wid, content_type, problems)
        if status.id != wid:
            return InvalidResponseError(
                f"asked for workflow {wid}, Portable answered about workflow {status.id}", workflow_id=wid
            )
        return self._scrub(status)

    def _invalid(self, body: bytes, wid: int, content_type: str, problems: list[Any]) -> InvalidResponseError:
        if any(p["type"] in ("json_invalid", "json_type") for p in problems):
            # Redact the whole text first, then cut: a cut first can split a key out of the redactor's reach.
            start = self._redactor.excerpt(body.decode("utf-8", "replace"), _EXCERPT)
            kind = self._redactor.excerpt(content_type, 80) or "no content type"
            return InvalidResponseError(
                f"the status body for workflow {wid} is not JSON ({kind}, {len(body)} bytes, starts with "
                f"{start!r}); a proxy error page or a cut-short answer?",
                workflow_id=wid,
                transient=True,
            )
        detail = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in problems[:5])
        return InvalidResponseError(
            f"the status body for workflow {wid} is not a workflow status: {self._redactor.text(detail)}",
            workflow_id=wid,
        )

    def _scrub(self, status: WorkflowStatus) -> WorkflowStatus:
        """Return ``status`` with the key redacted from every server-provided string (errors, resource names).

        Done here, where a status is parsed, so nothing downstream (WorkflowFailedError, PollEvent, the CLI's
        JSON, Airflow events) ever holds the key. The common status has no such strings and is returned as is.
        """
        redactor = self._redactor
        # Resource names come back on every poll: strings already found clean are not scanned again.
        clean = self._clean
        if not status.errors:
            for resource in status.resources:
                if resource.errors or resource.name not in clean:
                    break
            else:
                return status  # the common status: nothing new to scan
        fresh = [text for text in _strings_of(status) if text not in clean]
        if not fresh:
            return status
        # One pass over all the strings, joined by a printable non-key character (a box-drawing bar): a piece of
        # a key cannot straddle a join, and printable text takes the redactor's fast path.
        if not redactor.contains("\u2502".join(fresh)):
            if len(self._clean) < _CLEAN_CACHE:
                self._clean.update(fresh)
            return status
        resources = tuple(
            r.model_copy(update={"name": redactor.text(r.name), "errors": tuple(map(redactor.text, r.errors))})
            for r in status.resources
        )
        return status.model_copy(update={"errors": tuple(map(redactor.text, status.errors)), "resources": resources})


def _strings_of(status: WorkflowStatus) -> list[str]:
    found = list(status.errors)
    for resource in status.resources:
        found.append(resource.name)
        found.extend(resource.errors)
    return found


# aiohttp 3.10 added ClientConnectorDNSError; before it, a DNS failure is a ClientConnectorError over a gaierror.
_DNS_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls for cls in (getattr(aiohttp, "ClientConnectorDNSError", None), socket.gaierror) if cls is not None
)


def _connection_failure(exc: BaseException) -> str:
    """Name why a connection failed, in the words a user checks a setting by."""
    if isinstance(exc, _DNS_ERRORS):
        return "host name not resolved"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not accepted"
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return "proxy connection failed"
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "host name not resolved"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed with no answer"
    if isinstance(cause, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "connection timed out"
    return "connection failed"


def _resolve_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV, "").strip()
        if not api_key:
            raise ValueError(f"no Portable API key: pass api_key=... or set the {API_KEY_ENV} environment variable")
    elif not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str, got {type(api_key).__name__}")
    if not api_key.strip():
        raise ValueError(f"api_key is empty: pass the key, or set {API_KEY_ENV} and leave api_key out")
    if any(c in api_key for c in "\r\n\t ") or not api_key.isprintable() or not api_key.isascii():
        # Named without the value: the value is the secret.
        raise ValueError("api_key contains whitespace or non-printable characters; check how it was copied")
    return api_key


def _resolve_base_url(base_url: str | None) -> str:
    if base_url is not None:
        return _check_base_url(base_url)
    from_env = os.environ.get(BASE_URL_ENV, "").strip()
    if not from_env:
        return DEFAULT_BASE_URL
    try:
        return _check_base_url(from_env)
    except ValueError as exc:
        raise ValueError(f"the {BASE_URL_ENV} environment variable is not usable ({exc}); fix or unset it") from None


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _check_base_url(base_url: str) -> str:
    """Return ``base_url`` normalised (no trailing slash), or raise ValueError naming what is wrong.

    A path is kept as a prefix, for a proxy that serves the API under one (``https://gw.example.com/portable``
    requests ``/portable/v2/workflows/...``); a path that already ends in the API's own ``/v2`` is refused,
    since every request would then 404.
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    shown = _without_credentials(base_url)
    text = base_url.strip()
    if any(c.isspace() for c in text) or not text.isprintable():
        raise ValueError(f"base_url {shown!r} contains spaces or control characters")
    try:
        url = URL(text)
        host = url.raw_host
    except (ValueError, TypeError) as exc:
        raise ValueError(f"base_url {shown!r} is not a URL: {_without_credentials(str(exc))}") from None
    if url.scheme not in ("http", "https") or not host:
        raise ValueError(f"base_url must look like https://api.portable.io, got {shown!r}")
    if url.user or url.password:
        raise ValueError("base_url must not contain credentials; pass the key as api_key or PORTABLE_API_KEY")
    if url.query_string or url.fragment or "?" in text or "#" in text:
        raise ValueError(f"base_url must not have a query or fragment, got {shown!r}")
    if not _valid_host(host):
        raise ValueError(f"base_url {shown!r} does not name a valid host name or IP address")
    path = url.path.rstrip("/")
    if path.lower().endswith("/v2") or "/v2/workflows" in path.lower():
        raise ValueError(
            f"base_url {shown!r} includes the API's /v2 path; give the root (https://api.portable.io): the "
            "client adds /v2/workflows/{id}/status itself"
        )
    if url.scheme == "http" and not _is_loopback(host):
        raise ValueError(
            f"base_url {shown!r} uses plain http:// to a non-loopback host, which would send the API key "
            "in clear text; use https://"
        )
    return str(url.with_path(path or "/")).rstrip("/")


def _without_credentials(text: str) -> str:
    return re.sub(r"//[^/@?#]*@", "//***@", text)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.lower().removesuffix(".").split(".")
    if len(host) > 253 or labels[-1].isdigit():  # all-digit last label: an IPv4 address that is not one
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _held_length(response: aiohttp.ClientResponse) -> int | None:
    """Return how many bytes the body will take once read, if the headers say: its ``Content-Length``, unless it
    is compressed (a compressed body's length says nothing of what it inflates to: 200 MiB of zeros gzip to
    200 KB)."""
    return None if "Content-Encoding" in response.headers else response.content_length


def _fits_unread(response: aiohttp.ClientResponse, limit: int) -> bool:
    """Return True if the body is known to be at most ``limit`` bytes before it is read."""
    length = _held_length(response)
    return length is not None and length <= limit


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """Return the body of an answer `_fits_unread` could not vouch for, or None (the connection closed, nothing
    kept) if it is longer than ``limit`` bytes.

    The limit applies to the body as decompressed (aiohttp inflates it as it is read), so a small compressed
    answer cannot fill memory.
    """
    length = _held_length(response)
    if length is not None and length > limit:
        return None  # known to be too long: not read at all
    # Chunked, up to the connection's close, or compressed: read at most limit + 1 bytes of what it inflates to.
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
    # The rest is never read: leaving `session.get`'s block releases the connection, which aiohttp then closes,
    # as its payload is not at its end.
    return None
