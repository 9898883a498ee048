"""OpenTelemetry metrics and spans, and client.stats(), on real waits against the fake server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from portable_wait import (
    PollEvent,
    __version__,
    _telemetry,
    as_completed,
    wait_for_completion,
    wait_for_many,
)
from portable_wait.testing import FAST_POLL, FakePortable

from .conftest import FAST, RunCli

KEY = "sk-telemetry-secret-5f1c"
TEMPLATE = "/v2/workflows/{id}/status"


@dataclass
class Otel:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every metric point by instrument name, after checking they all come from the portable_wait scope."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded at all
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                assert scope_metrics.scope.name == "portable_wait"
                assert scope_metrics.scope.version == __version__
                for metric in scope_metrics.metrics:
                    points = found.setdefault(metric.name, [])
                    points += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return found

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    """A private SDK meter and tracer provider for this test (the global ones can be set only once)."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    _telemetry.use_providers(meter_provider, tracer_provider)
    try:
        yield Otel(reader, exporter, tracer_provider)
    finally:
        _telemetry.use_providers(None, None)
        meter_provider.shutdown()
        tracer_provider.shutdown()


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def total(points: list[tuple[dict[str, Any], Any]]) -> dict[tuple[tuple[str, Any], ...], float]:
    """Sum or count of each point, keyed by its attributes."""
    return {tuple(sorted(a.items())): p.count if hasattr(p, "count") else p.value for a, p in points}


async def test_telemetry_fanout_with_failures_429s_and_retries(otel: Otel) -> None:
    async with FakePortable(api_key=KEY) as fake:
        for wid in range(1, 6):
            # Long enough to be still running when the fan-out starts, even on a loaded machine: a run over
            # before its wait began has no detection lag.
            fake.add_workflow(wid, pending=0.2, running=0.1 + wid / 20)
        fake.add_workflow(6, running=0.4, outcome="FAILED", errors=["schema mismatch"])
        fake.add_workflow(7, running=60)  # TIMEOUT
        fake.add_workflow(8, forbidden=True)  # 403: ERROR at once
        # Workflow 1's first two requests fail, each retried by the client: a 503, and no answer within the
        # client's timeout (a dropped connection would not do: aiohttp itself resends a GET whose reused
        # connection was closed, so the client may never see it). A 429 comes late, on the long wait's 12th
        # request: a stray among successes, which the pacer counts but does not slow down for.
        fake.add_fault("503", workflow_id=1, requests=[1])
        fake.add_fault("slow", workflow_id=1, requests=[2], delay=1.0)
        fake.add_fault("429", workflow_id=7, requests=[12], retry_after="0")
        ids = list(range(1, 9))
        active_seen: list[int] = []
        parent_tracer = otel.tracer_provider.get_tracer("test")
        async with fake.client(max_concurrency=4, request_timeout=0.3) as client:

            def on_poll(event: PollEvent) -> None:
                active_seen.append(client.stats().waits_active)

            with parent_tracer.start_as_current_span("caller") as caller:
                results = await wait_for_many(
                    client, ids, return_exceptions=True, poll=FAST_POLL, timeout=1.5, on_poll=on_poll
                )
            pace = otel.metrics().get("portable_wait.pace")
            stats = client.stats()

    outcomes = {wid: type(o).__name__ for wid, o in results.items()}
    assert outcomes == {
        **dict.fromkeys(range(1, 6), "WorkflowStatus"),
        6: "WorkflowFailedError",
        7: "WaitTimeoutError",
        8: "PermissionDeniedError",
    }
    metrics = otel.metrics()
    assert set(metrics) == {
        "portable_wait.requests",
        "portable_wait.request.duration",
        "portable_wait.retries",
        "portable_wait.rate_limited",
        "portable_wait.waits.active",
        "portable_wait.wait.duration",
        "portable_wait.detection_lag",
    }  # and portable_wait.pace, read while the client was open (below)

    # Requests: by status code, or error.type for the one that timed out; the same counts as stats().
    requests = total(metrics["portable_wait.requests"])
    by_key = {dict(k).get("http.response.status_code", dict(k).get("error.type")): v for k, v in requests.items()}
    assert by_key == dict(stats.requests_by_status)
    assert sum(by_key.values()) == stats.requests
    assert by_key[429] == 1 and by_key[503] == 1 and by_key[403] == 1 and by_key[200] >= 8
    assert by_key["timeout"] == 1
    # The long wait's last request may be cut short by its deadline: an exchange without an answer too.
    assert {key for key in by_key if isinstance(key, str)} <= {"timeout", "CancelledError"}
    durations = metrics["portable_wait.request.duration"]
    assert total(durations) == requests  # one duration sample per request, same attributes
    assert all(p.sum < 5 for _, p in durations)

    # Retries and 429s.
    assert total(metrics["portable_wait.retries"]) == {
        (("error.type", "429"),): 1,
        (("error.type", "503"),): 1,
        (("error.type", "TransportError"),): 1,
    }
    assert stats.retries == 3
    assert total(metrics["portable_wait.rate_limited"]) == {(): 1}
    assert stats.rate_limited == 1

    # Waits: all eight were active at the first poll; none is now; one duration sample per wait, by outcome.
    assert max(active_seen) == 8
    assert total(metrics["portable_wait.waits.active"]) == {(): 0}
    assert stats.waits_active == 0 and stats.waits_done == 8
    assert total(metrics["portable_wait.wait.duration"]) == {
        (("portable_wait.outcome", "SUCCEEDED"),): 5,
        (("portable_wait.outcome", "FAILED"),): 1,
        (("portable_wait.outcome", "TIMEOUT"),): 1,
        (("portable_wait.outcome", "ERROR"),): 1,
    }
    # Detection lag: the six runs that completed while waited on (five SUCCEEDED, one FAILED), on the order of a
    # poll interval (FAST_POLL: at most 50 ms) plus the 429's pause and the loaded machine's scheduling.
    [(_, lag)] = metrics["portable_wait.detection_lag"]
    assert lag.count == 6 and lag.min >= 0 and lag.max < 2.0
    assert stats.detection_lag_mean == pytest.approx(lag.sum / 6)
    assert stats.detection_lag_p95 is not None and stats.detection_lag_p95 <= lag.max

    # Pace: one stray 429 among successes does not make the client pace itself, so the gauge has no point (it
    # reports a rate only while one applies: test_telemetry_pace_gauge_reports_the_rate_limit_...).
    assert not pace

    # Spans: one per wait, child of the caller's span; one CLIENT span per request, child of its wait's.
    spans = otel.spans()
    waits = {attrs_of(s)["portable.workflow.id"]: s for s in spans if s.name == "portable_wait.wait"}
    assert sorted(waits) == ids
    caller_context = caller.get_span_context()
    for wid, span in waits.items():
        assert span.parent is not None and span.parent.span_id == caller_context.span_id, wid
        assert span.context is not None and span.context.trace_id == caller_context.trace_id
        assert span.kind is SpanKind.INTERNAL
    outcome_of = {wid: attrs_of(s)["portable_wait.outcome"] for wid, s in waits.items()}
    assert outcome_of == {**dict.fromkeys(range(1, 6), "SUCCEEDED"), 6: "FAILED", 7: "TIMEOUT", 8: "ERROR"}
    assert waits[1].status.status_code is StatusCode.UNSET
    assert all(waits[w].status.status_code is StatusCode.ERROR for w in (6, 7, 8))

    http = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(http) == stats.requests
    wait_of = {s.context.span_id: wid for wid, s in waits.items() if s.context is not None}
    per_wait: dict[int, list[ReadableSpan]] = {}
    for span in http:
        assert span.name == f"GET {TEMPLATE}"
        attrs = dict(span.attributes or {})
        assert attrs["http.request.method"] == "GET"
        assert attrs["url.template"] == TEMPLATE
        assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == fake.port
        assert span.parent is not None
        wid = wait_of[span.parent.span_id]
        assert attrs["url.full"] == f"{fake.base_url}/v2/workflows/{wid}/status"
        per_wait.setdefault(wid, []).append(span)
        code = attrs.get("http.response.status_code")
        if code == 200:
            assert "error.type" not in attrs and span.status.status_code is StatusCode.UNSET
        else:
            assert attrs["error.type"] == str(code) if code is not None else attrs["error.type"]
            assert span.status.status_code is StatusCode.ERROR
    assert [attrs_of(s).get("http.response.status_code") for s in per_wait[1][:3]] == [503, None, 200]
    assert attrs_of(per_wait[1][1])["error.type"] == "timeout"
    assert attrs_of(per_wait[7][11])["http.response.status_code"] == 429
    for wid, span in waits.items():
        # Workflow 1's first poll took three requests (two retried failures), one of workflow 7's took two; and
        # workflow 7's last request, when its deadline cut it short (above), answered no poll.
        extra = {1: 2, 7: 1}.get(wid, 0)
        if attrs_of(per_wait[wid][-1]).get("error.type") == "CancelledError":
            extra += 1
        assert attrs_of(span)["portable_wait.polls"] == len(per_wait[wid]) - extra, wid

    # Never the key, never a header, never a query: not in a span and not in a metric attribute.
    recorded = json.dumps(
        [[s.name, dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]] for s in spans]
        + [[name, [a for a, _ in points]] for name, points in metrics.items()],
        default=str,
    )
    assert KEY not in recorded and "Bearer" not in recorded
    assert "authorization" not in recorded.lower() and "user-agent" not in recorded.lower()
    assert "?" not in recorded


async def test_telemetry_single_wait_span_and_request_children(otel: Otel) -> None:
    async with FakePortable(api_key=KEY) as fake:
        fake.add_workflow(1, running=0.5)
        async with fake.client() as client:
            status = await wait_for_completion(client, 1, poll=FAST_POLL)
            await client.get_workflow_status(1)  # outside any wait: a request span without a wait parent
    spans = otel.spans()
    [wait] = [s for s in spans if s.name == "portable_wait.wait"]
    assert wait.parent is None
    assert wait.attributes == {
        "portable.workflow.id": 1,
        "portable_wait.outcome": "SUCCEEDED",
        "portable_wait.polls": len(fake.requests) - 1,
    }
    http = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(http) == len(fake.requests)
    assert wait.context is not None
    assert all(s.parent is not None and s.parent.span_id == wait.context.span_id for s in http[:-1])
    assert http[-1].parent is None
    assert status.completed_at is not None
    # A wait that returns SUCCEEDED records its lag; the wait span ends after its last request span.
    assert wait.end_time is not None and all(s.end_time is not None and s.end_time <= wait.end_time for s in http[:-1])
    assert client.stats().detection_lag_mean is not None


async def test_telemetry_cancelled_fanout_ends_every_wait(otel: Otel) -> None:
    async with FakePortable(api_key=KEY) as fake:
        for wid in (1, 2, 3):
            fake.add_workflow(wid, running=0.05 if wid == 1 else 60)
        async with fake.client() as client:
            async with contextlib.aclosing(as_completed(client, [1, 2, 3], poll=FAST_POLL)) as results:
                async for wid, _ in results:
                    assert wid == 1
                    assert client.stats().waits_active == 2
                    break
            stats = client.stats()
    assert stats.waits_active == 0 and stats.waits_done == 1
    metrics = otel.metrics()
    assert total(metrics["portable_wait.waits.active"]) == {(): 0}
    assert total(metrics["portable_wait.wait.duration"]) == {(("portable_wait.outcome", "SUCCEEDED"),): 1}
    outcomes = sorted(str(attrs_of(s)["portable_wait.outcome"]) for s in otel.spans() if s.name == "portable_wait.wait")
    assert outcomes == ["CANCELLED", "CANCELLED", "SUCCEEDED"]


async def test_telemetry_pace_gauge_reports_the_rate_limit_and_nothing_while_unlimited(otel: Otel) -> None:
    async with FakePortable(api_key=KEY) as fake:
        async with fake.client():
            assert not otel.metrics().get("portable_wait.pace")
            async with fake.client(rate_limit=25):
                [(attrs, point)] = otel.metrics()["portable_wait.pace"]
                assert attrs == {} and point.value == 25
        # Closed clients no longer report.
        assert not otel.metrics().get("portable_wait.pace")


async def test_stats_snapshot_fields_are_frozen_and_read_only(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1, running=0.5)
    fake_portable.add_fault("500", requests=[1])
    async with fake_portable.client() as client:
        empty = client.stats()
        await wait_for_completion(client, 1, poll=FAST_POLL)
        stats = client.stats()
    assert empty.requests == 0 and empty.detection_lag_mean is None and empty.detection_lag_p95 is None
    assert stats.requests == len(fake_portable.requests)
    assert stats.requests_by_status[500] == 1 and stats.retries == 1 and stats.rate_limited == 0
    assert stats.waits_active == 0 and stats.waits_done == 1
    assert stats.detection_lag_mean is not None and stats.detection_lag_p95 is not None
    with pytest.raises(TypeError):
        stats.requests_by_status[200] = 0  # type: ignore[index]
    with pytest.raises(AttributeError):
        stats.requests = 0  # type: ignore[misc]
    assert empty.requests == 0  # a snapshot, not a view


BLOCKED = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
"""

SCRIPT = """
import asyncio, sys
import portable_wait
from portable_wait import wait_for_many
from portable_wait.testing import FAST_POLL, FakePortable
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported at import time"

async def main():
    async with FakePortable() as fake:
        fake.add_workflow(1, running=0.5)  # still running when the wait starts, even on a loaded machine
        fake.add_workflow(2, running=0.5, outcome="FAILED")
        fake.add_fault("429", requests=[3], retry_after="0")
        async with fake.client() as client:
            await wait_for_many(client, [1, 2], poll=FAST_POLL, return_exceptions=True)
            s = client.stats()
    print(s.requests, s.rate_limited, s.retries, s.waits_done, s.detection_lag_mean is not None)
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    print(portable_wait._telemetry._otel is None)  # no instruments: no provider to send anything to

asyncio.run(main())
"""


@pytest.mark.parametrize("blocked", [True, False], ids=["otel-absent", "otel-installed"])
def test_import_does_not_import_opentelemetry_and_stats_work_without_it(blocked: bool) -> None:
    code = (BLOCKED if blocked else "") + textwrap.dedent(SCRIPT)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    counts, modules, no_instruments = done.stdout.splitlines()
    assert no_instruments == "True"
    requests, rate_limited, retries, waits_done, lag = counts.split()
    assert int(requests) >= 3 and rate_limited == "1" and retries == "1" and waits_done == "2" and lag == "True"
    if blocked:
        assert modules == "[]"  # nothing imported, and nothing broke
    else:
        assert "'opentelemetry.metrics'" in modules  # loaded once a client was built


def test_cli_summary_reports_requests_429s_retries_and_lag(fake: FakePortable, cli: RunCli) -> None:
    # In this process (the cli fixture): the command must see the run going, then its end, after the faults.
    fake.add_workflow(1, running=0.5)
    fake.add_fault("429", requests=[3], retry_after="0")
    fake.add_fault("503", requests=[4])
    done = cli(fake, "wait", "1", "--json", *FAST)
    sent = len(fake.requests)
    assert done.returncode == 0, done.stderr
    match = re.search(r"(\d+) requests \(1 answered 429\), 2 retries, detection lag mean (\d+\.\d)s", done.stderr)
    assert match is not None, done.stderr
    assert int(match.group(1)) == sent and float(match.group(2)) < 3.0


README_SCRIPT = """
import asyncio, pathlib, re, sys
import portable_wait  # before the set-up, as in most programs: the global providers are found when set
from portable_wait.testing import FAST_POLL, FakePortable

readme = pathlib.Path(sys.argv[1]).read_text()
setup = next(b for b in re.findall(r"```python\\n(.*?)```", readme, re.S) if "set_meter_provider" in b)

async def main():
    async with FakePortable() as fake:
        async with fake.client() as client:
            exec(setup, {})  # after the client was built: seen from the next wait on
            # The run starts after the set-up (importing the SDK can take longer than the run on a loaded
            # machine), so it ends during the wait, the only kind of run that gives a detection lag.
            fake.add_workflow(1, running=0.5)
            await portable_wait.wait_for_completion(client, 1, poll=FAST_POLL)

asyncio.run(main())
from opentelemetry import metrics, trace
metrics.get_meter_provider().force_flush()
trace.get_tracer_provider().force_flush()
"""


def test_readme_observability_setup_exports_through_the_global_providers() -> None:
    readme = Path(__file__).parent.parent.parent / "README.md"
    done = subprocess.run(
        [sys.executable, "-c", README_SCRIPT, str(readme)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for name in ("portable_wait.wait", "GET /v2/workflows/{id}/status", "portable_wait.requests"):
        assert f'"name": "{name}"' in done.stdout, name
    assert '"portable_wait.detection_lag"' in done.stdout and '"portable_wait.outcome": "SUCCEEDED"' in done.stdout


async def test_telemetry_request_duration_is_the_exchange_not_the_pacers_wait(otel: Otel) -> None:
    async with FakePortable(api_key=KEY) as fake:
        fake.add_workflow(1, running=60)
        async with fake.client(rate_limit=5) as client:  # requests 0.2 s apart: the last waits 0.8 s for its turn
            started = time.perf_counter()
            await asyncio.gather(*(client.get_workflow_status(1) for _ in range(5)))
            elapsed = time.perf_counter() - started
    assert elapsed >= 0.75
    [(_, duration)] = otel.metrics()["portable_wait.request.duration"]
    # Counting the pacer's wait would add 0.2 + 0.4 + 0.6 + 0.8 = 2 s; five loopback exchanges take milliseconds.
    assert duration.count == 5 and duration.sum < 1.0
    spans = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert len(spans) == 5
    assert sum((s.end_time or 0) - (s.start_time or 0) for s in spans) / 1e9 < 1.0


class _FailingProcessor(SpanProcessor):
    """A span processor that fails on a span's start or end, as a buggy SDK plug-in may."""

    def __init__(self, when: str) -> None:
        self.when = when

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.when == "start":
            raise RuntimeError("span processor failed on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.when == "end":
            raise RuntimeError("span processor failed on end")


@pytest.mark.parametrize("when", ["start", "end"])
async def test_telemetry_that_fails_never_fails_a_request(
    otel: Otel, caplog: pytest.LogCaptureFixture, when: str
) -> None:
    otel.tracer_provider.add_span_processor(_FailingProcessor(when))
    async with FakePortable(api_key=KEY) as fake:
        fake.add_workflow(1, running=60)
        async with fake.client(request_timeout=0.3) as client:
            for _ in range(2):
                status = await client.get_workflow_status(1)
                assert status.id == 1
                # Nothing of the request stays behind: no deadline to cancel this task later, no request in flight.
                assert len(client._deadlines) == 0 and client._in_flight == 0
            await asyncio.sleep(0.5)  # past the request timeout: this task is not cancelled
            assert client.stats().requests_by_status == {200: 2}
    assert f"span processor failed on {when}" in caplog.text and "the request is not affected" in caplog.text
