"""`PortableClient`: one pooled aiohttp session, a bearer token, typed errors and retries.

Every request goes through `PortableClient._attempt`, the one choke point where the concurrency bound, the
request budget, error mapping and redaction happen.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import os
from types import TracebackType
from typing import Any

import aiohttp
from pydantic import ValidationError
from yarl import URL

from . import _retry
from ._config import RetryPolicy
from ._errors import (
    InvalidResponseError,
    PortableAPIError,
    PortableError,
    TransportError,
    error_from_response,
    is_transient,
)
from ._models import WorkflowStatus
from ._pacing import Pacer
from ._validate import check_workflow_id
from ._version import __version__

__all__ = ["API_KEY_ENV", "DEFAULT_BASE_URL", "PortableClient"]

DEFAULT_BASE_URL = "https://api.portable.io"
API_KEY_ENV = "PORTABLE_API_KEY"
USER_AGENT = f"portable-wait/{__version__}"
_REDACTED = b"[redacted]"
_DEFAULT_RETRY = RetryPolicy()


class PortableClient:
    """An async client for Portable's workflow status endpoint.

    Use it as an async context manager; it owns one ``aiohttp.ClientSession`` whose keep-alive connection pool
    every request shares, and closes it on exit. Share one client between every waiter of a program: the pool,
    the concurrency bound and the request budget are the client's.

    Args:
        api_key: The Portable API key. Defaults to the ``PORTABLE_API_KEY`` environment variable. It is sent only
            as a bearer token to ``base_url``'s host and never shown in a repr, a log line or an exception.
        base_url: The API's root. ``http://`` is refused except for loopback hosts (tests, the fake server),
            so the key never crosses a network in clear text. Default ``https://api.portable.io``.
        timeout: Seconds one HTTP request may take, from sending it to reading the whole body. Default 30.
        retry: How transient failures of one request are retried. Default ``RetryPolicy()``.
        max_concurrency: Requests in flight at once, across everything using this client; also the size of
            the connection pool. Default 10.
        rate_limit: Requests per second across everything using this client (every waiter, every retry), or
            None for no fixed limit. A 429 pauses and slows down the client either way. Default None.

    Raises:
        ValueError: No key was given and ``PORTABLE_API_KEY`` is unset or empty, or an argument is out of range.
        TypeError: An argument has the wrong type.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        retry: RetryPolicy = _DEFAULT_RETRY,
        max_concurrency: int = 10,
        rate_limit: float | None = None,
    ) -> None:
        key = _resolve_key(api_key)
        self._base_url = _check_base_url(base_url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, got {type(max_concurrency).__name__}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self._headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._key_bytes = key.encode()
        self._timeout = float(timeout)
        self._retry = retry
        self._max_concurrency = max_concurrency
        self._pacer = Pacer(rate_limit, max_pause=retry.retry_after_cap)
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._closed = False
        self._in_flight = 0
        self._requests = 0
        self._prefix = f"{self._base_url}/v2/workflows/"

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
    def max_concurrency(self) -> int:
        """Requests in flight at once, at most."""
        return self._max_concurrency

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (every try of every request)."""
        return self._requests

    async def __aenter__(self) -> PortableClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call twice."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this PortableClient is closed; create a new one")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_concurrency, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                raise_for_status=False,
                auto_decompress=True,
            )
            self._semaphore = asyncio.Semaphore(self._max_concurrency)
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
        try:
            return await self._attempt(wid)
        except PortableError as error:
            if not is_transient(error):
                raise
            return await _retry.retry_request(
                functools.partial(self._attempt, wid),
                self._retry,
                error,
                what=f"status request for workflow {wid}",
            )

    async def _attempt(self, wid: int) -> WorkflowStatus:
        session = self._ensure_session()
        assert self._semaphore is not None
        async with self._semaphore:
            if self._pacer.engaged:
                sent_at = await self._pacer.acquire()
            else:
                sent_at = self._pacer.count_send(asyncio.get_running_loop().time())
            self._in_flight += 1
            self._requests += 1
            try:
                async with session.get(self._prefix + f"{wid}/status", allow_redirects=False) as response:
                    body = await response.read()
                    status_code = response.status
                    headers = response.headers
            except asyncio.TimeoutError:
                raise TransportError(
                    f"status request for workflow {wid} timed out after {self._timeout:g} s", workflow_id=wid
                ) from None
            except aiohttp.ClientPayloadError as exc:
                raise InvalidResponseError(
                    f"the status body for workflow {wid} was cut short ({type(exc).__name__})",
                    workflow_id=wid,
                    transient=True,
                ) from None
            except aiohttp.ClientResponseError as exc:
                # Not chained: the repr of ClientResponseError carries the request headers, token included.
                raise TransportError(
                    f"bad HTTP answer for workflow {wid}: {exc.status} {exc.message}", workflow_id=wid
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise TransportError(
                    f"could not reach Portable at {self._base_url} for workflow {wid}: "
                    f"{type(exc).__name__}: {self._redact_text(str(exc))}",
                    workflow_id=wid,
                ) from self._safe_cause(exc)
            finally:
                self._in_flight -= 1
        if status_code != 200:
            error = self._error_from(status_code, headers, body, wid)
            if status_code == 429:
                self._pacer.on_rate_limited(error.retry_after, sent_at=sent_at)
            raise error
        self._pacer.on_success()
        return self._parse(body, wid)

    def _error_from(self, status_code: int, headers: Any, body: bytes, wid: int) -> PortableAPIError:
        if 300 <= status_code < 400:
            target = headers.get("Location", "?")
            return PortableAPIError(
                status_code,
                f"redirect to {self._redact_text(target)} not followed (the API key is never sent on)",
                workflow_id=wid,
            )
        return error_from_response(status_code, headers, body.replace(self._key_bytes, _REDACTED), workflow_id=wid)

    def _parse(self, body: bytes, wid: int) -> WorkflowStatus:
        try:
            status = WorkflowStatus.model_validate_json(body)
        except ValidationError as exc:
            problems = exc.errors(include_url=False, include_input=False, include_context=False)
            if any(p["type"] in ("json_invalid", "json_type") for p in problems):
                start = body[:40].replace(self._key_bytes, _REDACTED).decode("utf-8", "replace")
                raise InvalidResponseError(
                    f"the status body for workflow {wid} is not JSON (starts with {start!r}); "
                    "a proxy error page or a cut-short answer?",
                    workflow_id=wid,
                    transient=True,
                ) from None
            detail = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in problems[:5])
            raise InvalidResponseError(
                f"the status body for workflow {wid} is not a workflow status: {detail}", workflow_id=wid
            ) from None
        if status.id != wid:
            raise InvalidResponseError(
                f"asked for workflow {wid}, Portable answered about workflow {status.id}", workflow_id=wid
            )
        return status

    def _safe_cause(self, exc: BaseException) -> BaseException | None:
        # Chain aiohttp's error for the debugging value of its traceback, unless it could show the key.
        key = self._key_bytes.decode()
        return None if key in str(exc) or key in repr(exc) else exc

    def _redact_text(self, text: str) -> str:
        return text.replace(self._key_bytes.decode(), _REDACTED.decode())


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


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    try:
        url = URL(base_url.strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"base_url {base_url!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must look like https://api.portable.io, got {base_url!r}")
    if url.user or url.password:
        raise ValueError("base_url must not contain credentials; pass the key as api_key or PORTABLE_API_KEY")
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValueError(
            f"base_url {base_url!r} uses plain http:// to a non-loopback host, which would send the API key "
            "in clear text; use https://"
        )
    return str(url).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
