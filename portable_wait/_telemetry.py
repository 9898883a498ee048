"""What the client and its waits did: OpenTelemetry metrics and spans, and the counters behind `ClientStats`.

The only module that imports ``opentelemetry``, and only when the first `PortableClient` is built: without
``opentelemetry-api`` nothing is imported and only the plain counters of ``client.stats()`` are kept. With the
API but no SDK configured (OpenTelemetry's global providers still its proxies), no OpenTelemetry call is made
either: whether a real provider has been set is checked again whenever a client is built or a wait starts,
which is cheap, instead of on every request, which would cost (docs/performance.md, section 1b). So a program
that configures OpenTelemetry after building its client is seen from its next wait on. Nothing recorded here
ever holds the API key, a header, or a URL with a query.

Two levels, so the thing that drives waits can change without touching the client:

* request level (`ClientTelemetry.request` and `request_done`, used by the client's one choke point, and
  `ClientTelemetry.retry`, handed to the request retry loop): one HTTP client span per request and the
  ``portable_wait.requests``, ``request.duration``, ``retries`` and ``rate_limited`` metrics;
* wait level (`ClientTelemetry.wait_started` returns a `WaitTelemetry`; the driver wraps each poll's request in
  ``with wait.polling():`` and calls ``wait.finished(outcome)`` or ``wait.cancelled()`` once): one
  ``portable_wait.wait`` span per wait, the parent of its requests' spans even when a shared worker task sends
  them, and the ``waits.active``, ``wait.duration`` and ``detection_lag`` metrics.

The instrument names, units and attributes are a public contract, listed in the README's "Observability".
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from ._errors import PortableAPIError, PortableError, WorkflowFailedError
from ._models import WorkflowStatus
from ._report import outcome_name
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["LAG_WINDOW", "URL_TEMPLATE", "ClientStats", "ClientTelemetry", "WaitTelemetry", "use_providers"]

SCOPE = "portable_wait"
URL_TEMPLATE = "/v2/workflows/{id}/status"
REQUEST_SPAN_NAME = f"GET {URL_TEMPLATE}"
"""``{method} {url.template}``: the HTTP client span name the semantic conventions ask for when the template is set."""
WAIT_SPAN_NAME = "portable_wait.wait"
LAG_WINDOW = 1000
"""``detection_lag_p95`` is taken over this many most recent samples (the mean is over all of them)."""

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0)
_WAIT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
_LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# The wait whose poll is in progress in this context: set by `WaitTelemetry.polling`, read by
# `ClientTelemetry.request`, so a request made by a worker task shared between waits still knows its wait.
_CURRENT_WAIT: contextvars.ContextVar[WaitTelemetry | None] = contextvars.ContextVar(
    "portable_wait_current_wait", default=None
)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of what one `PortableClient` has done, from ``client.stats()``; works without OpenTelemetry.

    Attributes:
        requests: HTTP exchanges finished (every try of every request, answered or not).
        requests_by_status: Read-only ``{key: count}`` over the same exchanges: an int HTTP status code for an
            answer, or a str ``error.type`` for an exchange that got none (``"timeout"``,
            ``"ClientConnectorError"``, ...). The counts add up to ``requests``.
        retries: Request retries (each try after a transient failure).
        rate_limited: 429 answers.
        waits_active: Waits started and not yet over.
        waits_done: Waits that ended with an outcome (cancelled waits are in neither count).
        detection_lag_mean: Mean seconds from a run's ``completedAt`` to its wait returning, on Portable's
            clock, over every wait whose run completed while it waited; None without a sample.
        detection_lag_p95: The 95th percentile of the same, over the last `LAG_WINDOW` samples; None without one.
    """

    requests: int
    requests_by_status: Mapping[int | str, int]
    retries: int
    rate_limited: int
    waits_active: int
    waits_done: int
    detection_lag_mean: float | None
    detection_lag_p95: float | None


class _Otel:
    """The instruments and tracer, built once per pair of providers."""

    __slots__ = (
        "client_kind",
        "detection_lag",
        "error",
        "rate_limited",
        "request_duration",
        "requests",
        "retries",
        "tracer",
        "wait_duration",
        "waits_active",
    )

    def __init__(self, meter_provider: MeterProvider | None, tracer_provider: TracerProvider | None) -> None:
        from opentelemetry import metrics, trace

        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        self.client_kind = trace.SpanKind.CLIENT
        self.error = trace.Status(trace.StatusCode.ERROR)
        self.requests = meter.create_counter(
            "portable_wait.requests", unit="{request}", description="HTTP requests to Portable, every try"
        )
        self.request_duration = meter.create_histogram(
            "portable_wait.request.duration",
            unit="s",
            description="Duration of one HTTP exchange, not counting time spent waiting on the client's pacer",
            explicit_bucket_boundaries_advisory=_REQUEST_BUCKETS,
        )
        self.retries = meter.create_counter(
            "portable_wait.retries", unit="{retry}", description="Request retries after a transient failure"
        )
        self.rate_limited = meter.create_counter(
            "portable_wait.rate_limited", unit="{response}", description="429 Too Many Requests answers"
        )
        self.waits_active = meter.create_up_down_counter(
            "portable_wait.waits.active", unit="{wait}", description="Waits in progress"
        )
        self.wait_duration = meter.create_histogram(
            "portable_wait.wait.duration",
            unit="s",
            description="Duration of a wait, by outcome",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self.detection_lag = meter.create_histogram(
            "portable_wait.detection_lag",
            unit="s",
            description="From a run's completedAt to its wait returning, on Portable's clock",
            explicit_bucket_boundaries_advisory=_LAG_BUCKETS,
        )
        meter.create_observable_gauge(
            "portable_wait.pace",
            callbacks=[_observe_pace],
            unit="{request}/s",
            description="Requests per second the client allows itself (no point while unlimited)",
        )


_otel: _Otel | None = None
"""The instruments, while there is somewhere to send what they record; None otherwise (the hot path reads it)."""
_mode = "unloaded"
"""unloaded; absent (no opentelemetry-api); global (follow the global providers); explicit (`use_providers`)."""
_api: Any = None
"""``(opentelemetry.metrics, opentelemetry.trace)`` once imported."""
# The open clients, for the pace gauge, whose callback runs on the metric reader's thread.
_clients: weakref.WeakSet[ClientTelemetry] = weakref.WeakSet()
_clients_lock = threading.Lock()


def _refresh() -> None:
    global _otel, _mode, _api
    if _mode == "unloaded":
        try:
            from opentelemetry import metrics, trace
        except ImportError:  # no opentelemetry-api: keep the plain counters only
            _mode = "absent"
            return
        _mode, _api = "global", (metrics, trace)
    if _mode == "global" and _otel is None and _global_providers_set():
        _otel = _Otel(None, None)


def _global_providers_set() -> bool:
    metrics, trace = _api
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    # The API's stand-in meter provider is private; should its name change, this errs towards recording.
    return type(metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider"


def use_providers(meter_provider: MeterProvider | None, tracer_provider: TracerProvider | None) -> None:
    """Send this package's telemetry to these providers; with both None, go back to the global ones.

    For tests, which need a fresh SDK per test while OpenTelemetry lets the global providers be set only once.
    Clients already built switch too.
    """
    global _otel, _mode
    if meter_provider is None and tracer_provider is None:
        _mode, _otel = ("unloaded" if _api is None else "global"), None
        _refresh()
    else:
        _mode, _otel = "explicit", _Otel(meter_provider, tracer_provider)


def _observe_pace(options: CallbackOptions) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    # One gauge for the process: the open clients that pace themselves, added up (most programs have one).
    with _clients_lock:
        clients = list(_clients)
    rates = [rate for client in clients if (rate := client.pace()) is not None]
    return [Observation(sum(rates))] if rates else []


def error_type(error: BaseException) -> str:
    """Return the ``error.type`` of an exchange that got no answer: low-cardinality, never a message."""
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):  # distinct classes before Python 3.11
        return "timeout"
    return type(error).__qualname__


logger = logging.getLogger("portable_wait")

_failures_logged = 0
MAX_FAILURE_LOGS = 5
"""How many failures of the OpenTelemetry SDK (a span processor, a sampler) are logged in full, per process."""


def _telemetry_failed(doing: str) -> None:
    """Log an OpenTelemetry SDK failure (never passed on: telemetry must not fail a request), a few in full."""
    global _failures_logged
    _failures_logged += 1
    if _failures_logged <= MAX_FAILURE_LOGS:
        logger.warning("OpenTelemetry failed %s; the request is not affected", doing, exc_info=True)
    else:
        logger.debug("OpenTelemetry failed %s; the request is not affected", doing, exc_info=True)


def tracing() -> bool:
    """Return True if OpenTelemetry records anything now (a request's span then needs its wait's as parent)."""
    return _otel is not None


def _retry_error_type(error: BaseException | None) -> str:
    if isinstance(error, PortableAPIError):
        return str(error.status_code)
    return "_OTHER" if error is None else type(error).__qualname__


class ClientTelemetry:
    """One client's telemetry: plain counters for `ClientStats`, and OpenTelemetry when it is installed."""

    __slots__ = (
        "__weakref__",
        "_attrs",
        "_by_status",
        "_lag_count",
        "_lag_sum",
        "_lags",
        "_prefix",
        "_rate_limited",
        "_requests",
        "_retries",
        "_waits_active",
        "_waits_done",
        "pace",
    )

    def __init__(self, base_url: str, *, pace: Callable[[], float | None]) -> None:
        from yarl import URL

        url = URL(base_url)
        self._prefix = f"{base_url}/v2/workflows/"
        # Span attributes every request shares; the URL is the base URL, which never has a query or credentials.
        self._attrs: dict[str, Any] = {
            "http.request.method": "GET",
            "url.template": URL_TEMPLATE,
            "server.address": url.host or "",
            "server.port": url.port or (443 if url.scheme == "https" else 80),
        }
        self.pace = pace
        self._requests = 0
        self._by_status: dict[int | str, int] = {}
        self._retries = 0
        self._rate_limited = 0
        self._waits_active = 0
        self._waits_done = 0
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._lag_sum = 0.0
        self._lag_count = 0
        _refresh()
        with _clients_lock:
            _clients.add(self)

    def close(self) -> None:
        """Stop reporting this client's pace."""
        with _clients_lock:
            _clients.discard(self)

    def stats(self) -> ClientStats:
        """Return a snapshot of the counters."""
        p95 = None
        if self._lags:
            ordered = sorted(self._lags)
            p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        return ClientStats(
            requests=self._requests,
            requests_by_status=MappingProxyType(dict(self._by_status)),
            retries=self._retries,
            rate_limited=self._rate_limited,
            waits_active=self._waits_active,
            waits_done=self._waits_done,
            detection_lag_mean=self._lag_sum / self._lag_count if self._lag_count else None,
            detection_lag_p95=p95,
        )

    # -- request level ----------------------------------------------------------------------------------------

    def request(self, workflow_id: int, parent: WaitTelemetry | None = None) -> RequestTelemetry | None:
        """Start recording one HTTP exchange: call it just before the request, and `request_done` once its whole
        answer has been read, or it ended without one.

        ``parent`` is the wait the request is for; by default the one whose ``polling()`` block is running.
        Returns what `request_done` needs: None when OpenTelemetry is off, as there is no span to carry (the
        common case costs no object per request).
        """
        otel = _otel
        if otel is None:
            return None
        wait = parent if parent is not None else _CURRENT_WAIT.get()
        context = wait.context if wait is not None else None
        attributes = {**self._attrs, "url.full": f"{self._prefix}{workflow_id}/status"}
        try:
            span = otel.tracer.start_span(REQUEST_SPAN_NAME, context, otel.client_kind, attributes)
        except Exception:  # an SDK's span processor or sampler failed: the request goes on unrecorded
            _telemetry_failed("starting a request span")
            return None
        return RequestTelemetry(otel, span, time.perf_counter())

    def request_done(self, probe: RequestTelemetry | None, status: int | None, error: BaseException | None) -> None:
        """Record the end of an exchange `request` started: its HTTP status once the whole answer was read, or
        the error it ended in without one (``error.type``: "timeout", or the error's class)."""
        key: int | str
        if error is None and status is not None:
            key = status
            if key == 429:
                self._rate_limited += 1
        else:
            key = "_OTHER" if error is None else error_type(error)
        self._requests += 1
        self._by_status[key] = self._by_status.get(key, 0) + 1
        if probe is None:
            return
        try:
            otel = probe.otel  # what the request started with, even if the providers changed meanwhile
            attrs = _request_attrs(key)
            otel.requests.add(1, attrs)
            otel.request_duration.record(time.perf_counter() - probe.started, attrs)
            if key == 429:
                otel.rate_limited.add(1)
            span = probe.span
            if span.is_recording():
                if isinstance(key, int):
                    span.set_attribute("http.response.status_code", key)
                if not isinstance(key, int) or key >= 400:
                    span.set_attribute("error.type", str(key))
                    span.set_status(otel.error)
            span.end()
        except Exception:  # an SDK's processor or exporter failed: the request's own outcome stands
            _telemetry_failed("recording a request")

    def retry(self, error: BaseException | None) -> None:
        """Count a request retry caused by ``error`` (``error.type``: the HTTP status, or the error's class)."""
        self._retries += 1
        otel = _otel
        if otel is not None:
            otel.retries.add(1, {"error.type": _retry_error_type(error)})

    # -- wait level ---------------------------------------------------------------------------------------------

    def wait_started(self, workflow_id: int) -> WaitTelemetry:
        """Record that a wait on ``workflow_id`` starts now; its span's parent is the caller's current span."""
        if _otel is None and _mode == "global":
            _refresh()
        self._waits_active += 1
        wait = WaitTelemetry(self, workflow_id)
        otel = _otel
        if otel is not None:
            wait.otel = otel
            otel.waits_active.add(1)
            span = otel.tracer.start_span(WAIT_SPAN_NAME, attributes={"portable.workflow.id": workflow_id})
            wait.span = span
            if span.is_recording():
                from opentelemetry.trace import set_span_in_context

                wait.context = set_span_in_context(span)
        return wait

    def _wait_done(self, wait: WaitTelemetry, outcome: str | None, lag: float | None) -> None:
        self._waits_active -= 1
        if outcome is not None:
            self._waits_done += 1
        if lag is not None:
            self._lags.append(lag)
            self._lag_sum += lag
            self._lag_count += 1
        otel = wait.otel  # so waits.active is decremented only where it was incremented
        if otel is None:
            return
        otel.waits_active.add(-1)
        if outcome is not None:
            attrs = {"portable_wait.outcome": outcome}
            otel.wait_duration.record(time.perf_counter() - wait.started, attrs)
        if lag is not None:
            otel.detection_lag.record(lag)
        span = wait.span
        if span is not None:
            if span.is_recording():
                span.set_attribute("portable_wait.outcome", outcome or "CANCELLED")
                span.set_attribute("portable_wait.polls", wait.polls)
                if outcome in ("FAILED", "TIMEOUT", "ERROR"):
                    from opentelemetry.trace import Status, StatusCode

                    span.set_status(Status(StatusCode.ERROR, outcome))
            span.end()


class RequestTelemetry:
    """One HTTP exchange being recorded with OpenTelemetry; see `ClientTelemetry.request`."""

    __slots__ = ("otel", "span", "started")

    def __init__(self, otel: _Otel, span: Span, started: float) -> None:
        self.otel = otel
        self.span = span
        self.started = started


class WaitTelemetry:
    """One wait being recorded; see `ClientTelemetry.wait_started`.

    ``with wait.polling():`` around each poll's request (it counts the poll and makes the wait's span the
    parent of the request's); then exactly one of ``finished(outcome)`` or ``cancelled()``. Later calls are
    ignored, so a driver may call ``cancelled()`` on everything it still holds when it shuts down.
    """

    __slots__ = (
        "context",
        "done",
        "otel",
        "owner",
        "polls",
        "span",
        "started",
        "token",
        "workflow_id",
    )

    def __init__(self, owner: ClientTelemetry, workflow_id: int) -> None:
        self.owner = owner
        self.otel: _Otel | None = None
        self.workflow_id = workflow_id
        self.polls = 0
        self.done = False
        self.span: Span | None = None
        self.context: Any = None
        self.token: contextvars.Token[WaitTelemetry | None] | None = None
        self.started = time.perf_counter()  # fan-out holds one per waiter: the wall-clock start is derived

    def polling(self) -> WaitTelemetry:
        """Count a poll; use as ``with wait.polling(): await client.get_workflow_status(...)``."""
        self.polls += 1
        return self

    def __enter__(self) -> WaitTelemetry:
        self.token = _CURRENT_WAIT.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.token is not None:
            _CURRENT_WAIT.reset(self.token)
            self.token = None

    def finished(self, result: WorkflowStatus | BaseException, *, clock_offset: float = 0.0) -> None:
        """Record how the wait ended: its final status, or the exception that ended it.

        Args:
            result: The final `WorkflowStatus`, or the error the wait raised or delivered
                (`WorkflowFailedError` is FAILED, `WaitTimeoutError` TIMEOUT, another error ERROR; an
                ``asyncio.CancelledError`` is the same as `cancelled`).
            clock_offset: Seconds Portable's clock is ahead of this machine's (negative if behind), for the
                detection lag; 0 until the client estimates it.
        """
        if self.done:
            return
        if not isinstance(result, (WorkflowStatus, Exception)):  # CancelledError, KeyboardInterrupt, ...
            self.cancelled()
            return
        self.done = True
        outcome = outcome_name(result) if isinstance(result, (WorkflowStatus, PortableError)) else "ERROR"
        status = result.status if isinstance(result, WorkflowFailedError) else result
        lag = None
        if isinstance(status, WorkflowStatus) and status.completed_at is not None:
            completed = status.completed_at.timestamp()
            now = time.time() + clock_offset
            # Only a run that completed while we waited was "detected late"; one that was already over
            # when the wait began says nothing about the poll schedule.
            if completed >= now - (time.perf_counter() - self.started):
                lag = max(0.0, now - completed)
        self.owner._wait_done(self, outcome, lag)

    def cancelled(self) -> None:
        """Record that the wait was abandoned without an outcome (no duration sample, not counted as done)."""
        if self.done:
            return
        self.done = True
        self.owner._wait_done(self, None, None)


_request_attr_cache: dict[int | str, Mapping[str, Any]] = {}


def _request_attrs(key: int | str) -> Mapping[str, Any]:
    attrs = _request_attr_cache.get(key)
    if attrs is None:
        attrs = {"http.response.status_code": key} if isinstance(key, int) else {"error.type": key}
        _request_attr_cache[key] = attrs
    return attrs
