"""The counters behind client.stats(), and the rules of the wait-level telemetry, without a server."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from portable_wait import WaitTimeoutError, WorkflowFailedError, WorkflowStatus
from portable_wait._errors import PortableAPIError, TransportError
from portable_wait._telemetry import LAG_WINDOW, ClientTelemetry, _retry_error_type, error_type


def status(disposition: str = "SUCCEEDED", completed: float | None = None) -> WorkflowStatus:
    completed_at = None if completed is None else datetime.fromtimestamp(completed, timezone.utc).isoformat()
    return WorkflowStatus.model_validate(
        {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": disposition, "completedAt": completed_at}
    )


def telemetry() -> ClientTelemetry:
    return ClientTelemetry("https://api.portable.io", pace=lambda: None)


def test_telemetry_lag_mean_over_all_and_p95_over_the_last_window() -> None:
    t = telemetry()
    # LAG_WINDOW waits with a lag of about 100 s, then LAG_WINDOW with about 1 s: the p95 only sees the latter.
    for lag in [100.0] * LAG_WINDOW + [1.0] * LAG_WINDOW:
        wait = t.wait_started(1)
        wait.started -= 1000  # the run completed while this wait was going on
        wait.finished(status(completed=time.time() - lag))
    stats = t.stats()
    assert stats.waits_done == 2 * LAG_WINDOW and stats.waits_active == 0
    assert stats.detection_lag_mean == pytest.approx(50.5, abs=0.5)
    assert stats.detection_lag_p95 == pytest.approx(1.0, abs=0.5)


def test_telemetry_lag_p95_is_the_95th_percentile() -> None:
    t = telemetry()
    for lag in range(1, 101):  # 1..100 s
        wait = t.wait_started(1)
        wait.started -= 1000
        wait.finished(status(completed=time.time() - lag))
    assert t.stats().detection_lag_p95 == pytest.approx(95, abs=0.5)


def test_telemetry_no_lag_for_a_run_that_was_over_before_the_wait_began() -> None:
    t = telemetry()
    t.wait_started(1).finished(status(completed=time.time() - 3600))
    stats = t.stats()
    assert stats.waits_done == 1 and stats.detection_lag_mean is None and stats.detection_lag_p95 is None


def test_telemetry_lag_uses_portables_clock() -> None:
    # Portable's clock is 30 s ahead of ours: its completedAt of "now + 28 s" was 2 s ago.
    t = telemetry()
    wait = t.wait_started(1)
    wait.started -= 10
    wait.finished(status(completed=time.time() + 28), clock_offset=30.0)
    assert t.stats().detection_lag_mean == pytest.approx(2.0, abs=0.5)
    # Without the offset, that run would seem to complete in the future: clamped to 0, never negative.
    t = telemetry()
    wait = t.wait_started(1)
    wait.finished(status(completed=time.time() + 28))
    assert t.stats().detection_lag_mean == 0.0


@pytest.mark.parametrize(
    ("result", "lagged"),
    [
        (status("SUCCEEDED", completed=time.time() + 5), True),
        (WorkflowFailedError(status("FAILED", completed=time.time() + 5)), True),
        (WaitTimeoutError(1, 1.0, None), False),
        (TransportError("down", workflow_id=1), False),
    ],
)
def test_telemetry_finished_counts_a_wait_once(result: WorkflowStatus | Exception, lagged: bool) -> None:
    t = telemetry()
    wait = t.wait_started(1)
    wait.started -= 1000
    assert t.stats().waits_active == 1
    wait.finished(result)
    wait.finished(result)
    wait.cancelled()
    stats = t.stats()
    assert stats.waits_active == 0 and stats.waits_done == 1
    assert (stats.detection_lag_mean is not None) is lagged


def test_telemetry_cancelled_wait_is_not_done() -> None:
    t = telemetry()
    t.wait_started(1).cancelled()
    t.wait_started(2).finished(asyncio.CancelledError())
    stats = t.stats()
    assert stats.waits_active == 0 and stats.waits_done == 0


def test_telemetry_polling_counts_polls_and_sets_the_current_wait() -> None:
    from portable_wait._telemetry import _CURRENT_WAIT

    t = telemetry()
    wait = t.wait_started(1)
    with wait.polling():
        assert _CURRENT_WAIT.get() is wait
    with wait.polling():
        pass
    assert wait.polls == 2 and _CURRENT_WAIT.get() is None


def test_telemetry_error_types_are_low_cardinality() -> None:
    assert error_type(asyncio.TimeoutError()) == "timeout"
    assert error_type(ConnectionResetError("peer said no, key=abc")) == "ConnectionResetError"
    assert _retry_error_type(PortableAPIError(503, "upstream unavailable")) == "503"
    assert _retry_error_type(TransportError("timed out after 30 s")) == "TransportError"


def test_telemetry_request_counts_answers_and_unanswered_exchanges() -> None:
    t = telemetry()
    t.request_done(t.request(1), 429, None)
    t.request_done(t.request(1), 200, None)
    t.request_done(t.request(1), None, asyncio.TimeoutError())
    t.retry(PortableAPIError(429, "Too Many Requests"))
    stats = t.stats()
    assert stats.requests == 3 and dict(stats.requests_by_status) == {429: 1, 200: 1, "timeout": 1}
    assert stats.rate_limited == 1 and stats.retries == 1


def test_telemetry_use_providers_none_goes_back_to_the_global_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    from portable_wait import _telemetry

    monkeypatch.setattr(_telemetry, "_mode", "unloaded")
    monkeypatch.setattr(_telemetry, "_api", None)
    monkeypatch.setattr(_telemetry, "_otel", None)
    _telemetry.use_providers(None, None)  # before any client was built
    # The dev environment has the API and configures no global provider: nothing to record to.
    assert _telemetry._mode == "global" and _telemetry._otel is None
