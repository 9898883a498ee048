"""A fake Portable API for tests and demos: a real HTTP server on 127.0.0.1, scripted from Python.

It serves ``GET /v2/workflows/{id}/status`` as the spec says, bearer auth included (401 without the right key,
404 for an unknown ID, 403 for a workflow set up to forbid). Each workflow follows a timeline, PENDING, then
RUNNING with growing record counts, then NOT_RUNNING with SUCCEEDED or FAILED, or a list of statuses you give.
Faults (429, 5xx, an HTML page, a cut-short body, a dropped connection, a slow answer) are injected by request
number, by time window or at random, and every request is logged.

Example::

    from portable_wait.testing import FakePortable, FAST_POLL

    async with FakePortable() as fake:
        fake.add_workflow(1, pending=0.1, running=0.5)
        fake.add_workflow(2, running=0.3, outcome="FAILED", errors=["source: 403 from Salesforce"])
        fake.add_fault("503", requests=[1, 2])
        async with fake.client() as client:
            status = await wait_for_completion(client, 1, poll=FAST_POLL)
        assert fake.requests[0].status == 503

The ``fake_portable`` and ``portable_client`` fixtures (registered by this package's pytest plugin) give you the
same in one line; they need pytest-asyncio, and say so if it is missing. `FakePortable.run_in_thread` serves it
from a background thread, for blocking code and subprocesses: give a subprocess ``base_url`` and ``api_key`` as
``PORTABLE_BASE_URL`` and ``PORTABLE_API_KEY``, which `PortableClient` and the CLI read.

Scripting a FAILED run: ``fake.add_workflow(7, running=0.5, outcome="FAILED", errors=["warehouse suspended"])``;
a wait on it raises `WorkflowFailedError` whose ``status.errors`` holds the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from ._client import PortableClient
from ._config import PollPolicy, RetryPolicy

__all__ = [
    "FAST_POLL",
    "FAST_RETRY",
    "FakePortable",
    "FakeWorkflow",
    "Fault",
    "RequestRecord",
]

FAST_POLL = PollPolicy(initial=0.01, maximum=0.05, multiplier=1.5, jitter=0.2, outage_tolerance=5.0)
"""A poll schedule for tests: 10 ms growing to 50 ms, riding out 5 s of failures."""

FAST_RETRY = RetryPolicy(attempts=4, initial=0.005, maximum=0.02, retry_after_cap=2.0)
"""A request retry policy for tests: millisecond backoff, ``Retry-After`` honoured up to 2 s."""

FaultKind = Literal["429", "500", "502", "503", "504", "html", "truncated", "drop", "slow", "invalid", "redirect"]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
_OUTCOMES = ("SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake answered.

    Attributes:
        time: Seconds since the server started.
        workflow_id: The ID asked for (None if the path had none).
        status: The HTTP status served (0 for a dropped connection).
        fault: The fault injected, if any.
        lifecycle: The lifecycle served on a 200 answer.
        user_agent: The request's User-Agent (the Authorization header is never logged).
    """

    time: float
    workflow_id: int | None
    status: int
    fault: str | None = None
    lifecycle: str | None = None
    user_agent: str = ""


@dataclass
class Fault:
    """A fault rule; see `FakePortable.add_fault`."""

    kind: str
    workflow_id: int | None = None
    requests: frozenset[int] | None = None
    rate: float | None = None
    window: tuple[float, float] | None = None
    times: int | None = None
    retry_after: str | None = None
    delay: float = 1.0
    fired: int = 0

    def applies(
        self, number: int, workflow_number: int, workflow_id: int | None, now: float, rng: random.Random
    ) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.workflow_id is not None and workflow_id != self.workflow_id:
            return False
        if self.window is not None and not self.window[0] <= now < self.window[1]:
            return False
        if self.requests is not None:
            n = workflow_number if self.workflow_id is not None else number
            if n not in self.requests:
                return False
        return not (self.rate is not None and rng.random() >= self.rate)


@dataclass
class _Run:
    started: float  # monotonic
    started_wall: datetime
    pending: float
    running: float
    outcome: str
    errors: tuple[str, ...]

    @property
    def duration(self) -> float:
        return self.pending + self.running


@dataclass
class FakeWorkflow:
    """One workflow of the fake server: its current run, its last result, or a script of statuses."""

    workflow_id: int
    resources: dict[str, int] = field(default_factory=lambda: {"users": 1000})
    forbidden: bool = False
    script: list[dict[str, Any]] | None = None
    run: _Run | None = None
    last: dict[str, Any] | None = None
    requests: int = 0

    def final_disposition(self) -> str:
        """The disposition this workflow will show once its current run (if any) is over."""
        if self.run is not None:
            return self.run.outcome
        if self.script is not None:
            return str(self.script[-1].get("disposition", "NONE")).upper()
        return str(self.last["disposition"]) if self.last else "NONE"

    def status(self, now: float, lowercase: bool = False) -> dict[str, Any]:
        """Return the status body served at monotonic time ``now``."""
        if self.script is not None:
            body = dict(self.script[min(self.requests, len(self.script)) - 1])
            body.setdefault("id", self.workflow_id)
            return body
        run = self.run
        if run is not None and now >= run.started:  # a run triggered with shows_after is not visible yet
            elapsed = now - run.started
            if elapsed < run.pending:
                body = self._body("PENDING", "NONE", 0.0, (), None)
            elif elapsed < run.duration:
                body = self._body("RUNNING", "NONE", (elapsed - run.pending) / run.running, (), None)
            else:
                done = run.started_wall + timedelta(seconds=run.duration)
                self.last = self._body("NOT_RUNNING", run.outcome, 1.0, run.errors, done)
                self.run = None
                body = self.last
        else:
            body = self.last or self._body("NOT_RUNNING", "NONE", 0.0, (), None, empty=True)
        if lowercase:
            body = dict(body, lifecycle=body["lifecycle"].lower(), disposition=body["disposition"].lower())
        return body

    def _body(
        self,
        lifecycle: str,
        disposition: str,
        progress: float,
        errors: Sequence[str],
        completed: datetime | None,
        *,
        empty: bool = False,
    ) -> dict[str, Any]:
        failed = disposition == "FAILED"
        resources = [
            {
                "name": name,
                "extracted": int(total * progress),
                "analyzed": int(total * progress),
                "loaded": int(total * progress * (0.5 if failed else 1.0)),
                "errors": ["load aborted"] if failed else [],
            }
            for name, total in ({} if empty else self.resources).items()
        ]
        return {
            "id": self.workflow_id,
            "lifecycle": lifecycle,
            "disposition": disposition,
            "resources": resources,
            "errors": list(errors),
            "completedAt": completed.isoformat().replace("+00:00", "Z") if completed else None,
        }


class FakePortable:
    """A fake Portable API server on 127.0.0.1 (a free port unless ``port`` is given).

    Args:
        api_key: The bearer token it accepts. Default ``"test-key"``.
        port: The port; 0 (the default) picks a free one.
        rate_limit: If set, more than this many requests in any one-second window are answered 429 with
            ``Retry-After: 1``, like a real gateway.
        lowercase: Serve enum values in lower case, as Portable's own docs show them.
        seed: Seed for random faults and `populate`.
        clock_offset: Seconds the fake's clock is ahead of the machine's (negative: behind); its ``Date``
            headers and ``completedAt`` values are shifted by it, to test clock skew.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        port: int = 0,
        rate_limit: float | None = None,
        lowercase: bool = False,
        seed: int | None = None,
        clock_offset: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.clock_offset = clock_offset
        self.rate_limit = rate_limit
        self.lowercase = lowercase
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.workflows: dict[int, FakeWorkflow] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._port = port
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self._accepted: deque[float] = deque()
        self._count = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def __repr__(self) -> str:
        return f"<FakePortable {self.base_url if self._runner else 'stopped'} workflows={len(self.workflows)}>"

    # -- life cycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving."""
        app = web.Application()
        app.router.add_get("/v2/workflows/{id}/status", self._handle)
        if self.clock_offset:
            app.on_response_prepare.append(self._stamp_date)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.base_events.Server)
        self._port = server.sockets[0].getsockname()[1]
        self._started = time.monotonic()

    async def close(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakePortable:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[FakePortable]:
        """Serve from a background thread (for blocking code and subprocesses); stop on exit."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop: asyncio.Future[None] | None = None
        failure: list[BaseException] = []

        async def serve() -> None:
            nonlocal stop
            stop = loop.create_future()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                raise
            ready.set()
            try:
                await stop
            finally:
                await self.close()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        ready.wait(10)
        if failure:
            thread.join(5)
            loop.close()
            raise failure[0]
        try:
            yield self
        finally:
            assert stop is not None
            loop.call_soon_threadsafe(stop.set_result, None)
            thread.join(10)
            loop.close()

    @property
    def port(self) -> int:
        """The TCP port served."""
        return self._port

    @property
    def base_url(self) -> str:
        """The URL to give `PortableClient` as ``base_url``."""
        return f"http://127.0.0.1:{self._port}"

    def client(self, **kwargs: Any) -> PortableClient:
        """Return a `PortableClient` for this server: its key and URL, and `FAST_RETRY` unless ``retry`` is given."""
        kwargs.setdefault("retry", FAST_RETRY)
        return PortableClient(self.api_key, base_url=self.base_url, **kwargs)

    def now(self) -> datetime:
        """The fake's wall clock (the machine's, shifted by ``clock_offset``)."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.clock_offset)

    async def _stamp_date(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = email.utils.formatdate(time.time() + self.clock_offset, usegmt=True)

    def elapsed(self) -> float:
        """Seconds since the server started."""
        return time.monotonic() - self._started

    # -- scripting ------------------------------------------------------------------------------------------

    def add_workflow(
        self,
        workflow_id: int,
        *,
        pending: float = 0.0,
        running: float = 1.0,
        outcome: str = "SUCCEEDED",
        errors: Iterable[str] = (),
        resources: Mapping[str, int] | None = None,
        start: bool = True,
        previous: str | None = None,
        previous_completed_at: datetime | None = None,
        forbidden: bool = False,
        script: Sequence[Mapping[str, Any]] | None = None,
    ) -> FakeWorkflow:
        """Add a workflow, and by default start a run of it now.

        Args:
            workflow_id: Its ID.
            pending: Seconds the run stays PENDING.
            running: Seconds it then stays RUNNING (``math.inf``: until `finish`).
            outcome: "SUCCEEDED" or "FAILED", the disposition the run ends with.
            errors: The run's errors (served when it ends).
            resources: Resource names and the records each will have extracted by the end.
            start: Start a run now; if False the workflow shows its ``previous`` result (or "never ran") until
                `trigger` starts one.
            previous: The disposition of an earlier, finished run ("SUCCEEDED"/"FAILED"), served until this
                one ends: what a waiter sees right after a trigger.
            previous_completed_at: When that earlier run completed, on the fake's clock (`now`). Default: an hour ago.
            forbidden: Answer 403 for this workflow.
            script: Instead of a timeline, the status bodies to serve, one per request, the last repeated.
        """
        workflow = FakeWorkflow(
            workflow_id,
            resources=dict(resources) if resources is not None else {"users": 1000, "orders": 250},
            forbidden=forbidden,
            script=[dict(s) for s in script] if script is not None else None,
        )
        if previous is not None:
            done = previous_completed_at or self.now() - timedelta(hours=1)
            workflow.last = workflow._body("NOT_RUNNING", _outcome(previous), 1.0, (), done)
        self.workflows[workflow_id] = workflow
        if start and script is None:
            self.trigger(workflow_id, pending=pending, running=running, outcome=outcome, errors=errors)
        return workflow

    def trigger(
        self,
        workflow_id: int,
        *,
        pending: float = 0.0,
        running: float = 1.0,
        outcome: str = "SUCCEEDED",
        errors: Iterable[str] = (),
        shows_after: float = 0.0,
    ) -> None:
        """Start a new run of an existing workflow.

        Args:
            workflow_id: An added workflow.
            pending, running, outcome, errors: As for `add_workflow`.
            shows_after: Seconds before the new run shows up as PENDING; until then the previous run's result
                is served, as the real API does for a moment after a trigger (what ``after=`` guards against).
        """
        workflow = self.workflows[workflow_id]
        if pending < 0 or running <= 0 or shows_after < 0 or math.isnan(pending + running + shows_after):
            raise ValueError("pending and shows_after must be >= 0 seconds, running > 0 seconds")
        start = self.now() + timedelta(seconds=shows_after)
        workflow.run = _Run(time.monotonic() + shows_after, start, pending, running, _outcome(outcome), tuple(errors))

    def finish(self, workflow_id: int, outcome: str = "SUCCEEDED", errors: Iterable[str] = ()) -> None:
        """End a workflow's current run now with ``outcome``."""
        workflow = self.workflows[workflow_id]
        run = workflow.run
        if run is None:
            raise ValueError(f"workflow {workflow_id} has no run in progress")
        elapsed = time.monotonic() - run.started
        workflow.run = _Run(
            run.started,
            run.started_wall,
            min(run.pending, elapsed),
            max(elapsed - run.pending, 1e-9),
            _outcome(outcome),
            tuple(errors),
        )

    def populate(
        self,
        count: int,
        *,
        first_id: int = 1,
        min_duration: float = 3.0,
        max_duration: float = 60.0,
        fail_rate: float = 0.15,
    ) -> list[int]:
        """Add ``count`` workflows with random durations and outcomes (seeded); return their IDs."""
        ids = []
        for wid in range(first_id, first_id + count):
            duration = self._rng.uniform(min_duration, max_duration)
            failed = self._rng.random() < fail_rate
            self.add_workflow(
                wid,
                pending=duration * self._rng.uniform(0.05, 0.3),
                running=duration,
                outcome="FAILED" if failed else "SUCCEEDED",
                errors=[f"destination rejected batch {self._rng.randint(1, 99)}: schema mismatch"] if failed else (),
                resources={
                    name: self._rng.randint(100, 500_000)
                    for name in ("accounts", "contacts", "events")[: self._rng.randint(1, 3)]
                },
            )
            ids.append(wid)
        return ids

    def add_fault(
        self,
        kind: str,
        *,
        workflow_id: int | None = None,
        requests: Iterable[int] | None = None,
        rate: float | None = None,
        between: tuple[float, float] | None = None,
        times: int | None = None,
        retry_after: float | str | None = None,
        delay: float = 1.0,
    ) -> Fault:
        """Inject a fault. With no condition it fires on every request; conditions combine with "and".

        Faults are checked in the order they were added, and the first that applies is served.

        Args:
            kind: "429" (with ``retry_after``), "500", "502", "503", "504", "html" (a 200 with an HTML page),
                "truncated" (a 200 whose body stops halfway, connection closed), "drop" (connection closed
                with no answer), "slow" (answers after ``delay`` seconds), "invalid" (a 200 whose JSON is not
                a status), "redirect" (a 302 to another host).
            workflow_id: Only requests for this workflow; ``requests`` then counts that workflow's requests.
            requests: Request numbers (from 1) to fire on.
            rate: Probability of firing on each request that matches the rest.
            between: Seconds since the server started: fire only in ``[start, end)`` (an outage).
            times: Fire at most this many times.
            retry_after: The ``Retry-After`` of a 429 or 5xx: seconds, or an HTTP date string.
            delay: Seconds a "slow" answer takes.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        fault = Fault(
            kind,
            workflow_id=workflow_id,
            requests=frozenset(requests) if requests is not None else None,
            rate=rate,
            window=between,
            times=times,
            retry_after=None if retry_after is None else str(retry_after),
            delay=delay,
        )
        self.faults.append(fault)
        return fault

    def outage(self, start: float, duration: float, kind: str = "503") -> Fault:
        """Fail every request from ``start`` to ``start + duration`` seconds after the server started."""
        return self.add_fault(kind, between=(start, start + duration))

    def requests_for(self, workflow_id: int) -> list[RequestRecord]:
        """The logged requests for one workflow."""
        return [r for r in self.requests if r.workflow_id == workflow_id]

    # -- serving --------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._count += 1
        number = self._count
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, number)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, number: int) -> web.StreamResponse:
        raw_id = request.match_info["id"]
        wid = int(raw_id) if raw_id.isdigit() else None
        workflow = self.workflows.get(wid) if wid is not None else None
        if workflow is not None:
            workflow.requests += 1
        now = self.elapsed()
        agent = request.headers.get("User-Agent", "")

        def log(status: int, fault: str | None = None, lifecycle: str | None = None) -> None:
            self.requests.append(RequestRecord(now, wid, status, fault, lifecycle, agent))

        fault = next(
            (f for f in self.faults if f.applies(number, workflow.requests if workflow else 0, wid, now, self._rng)),
            None,
        )
        if fault is not None:
            fault.fired += 1
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            else:
                return await self._serve_fault(request, fault, workflow, log)
        if self.rate_limit is not None:
            mono = time.monotonic()
            while self._accepted and mono - self._accepted[0] >= 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.rate_limit:
                log(429, "rate_limit")
                return _json(429, {"message": "Too Many Requests"}, {"Retry-After": "1"})
            self._accepted.append(mono)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            log(401)
            return _json(401, {"message": "Unauthorized"})
        if workflow is None:
            log(404)
            return _json(404, {"message": "Not Found"})
        if workflow.forbidden:
            log(403)
            return _json(403, {"message": "Your current plan does not support this feature"})
        body = workflow.status(time.monotonic(), self.lowercase)
        log(200, fault.kind if fault else None, str(body.get("lifecycle")))
        return _json(200, body)

    async def _serve_fault(
        self, request: web.Request, fault: Fault, workflow: FakeWorkflow | None, log: Any
    ) -> web.StreamResponse:
        kind = fault.kind
        if kind == "429":
            log(429, kind)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _json(429, {"message": "Too Many Requests"}, headers)
        if kind in ("500", "502", "503", "504"):
            log(int(kind), kind)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _json(int(kind), {"message": "upstream unavailable"}, headers)
        if kind == "html":
            log(200, kind)
            page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            return web.Response(status=200, text=page, content_type="text/html")
        if kind == "invalid":
            log(200, kind)
            return _json(200, {"id": "not-a-number", "lifecycle": 7})
        if kind == "redirect":
            log(302, kind)
            return web.Response(status=302, headers={"Location": "https://elsewhere.invalid/steal"})
        body = json.dumps(workflow.status(time.monotonic(), self.lowercase) if workflow else {}).encode()
        if kind == "truncated":
            log(200, kind)
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            _abort(request)
            return response
        log(0, kind)  # drop
        _abort(request)
        return web.Response(status=500)


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _outcome(value: str) -> str:
    upper = str(value).upper()
    if upper not in _OUTCOMES:
        raise ValueError(f"outcome must be one of {_OUTCOMES}, got {value!r}")
    return upper


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body), content_type="application/json", headers=headers)
