"""The wait hub: one driver for every wait of a `PortableClient`, one poll stream per workflow.

Every wait (`wait_for_completion`, `wait_for_many`, `as_completed`, Airflow's poke mode through `poll_round`)
enrolls a *waiter* here: a `WaitState` (its own deadline, ``after``, ``raise_on_failure``, ``on_poll``) and where
its outcome goes (a future, or a fan-out's queue). Waiters on the same workflow ID share one *stream*: one
request serves them all, and each judges the answer by its own rules.

How it runs::

    _polls      heap of (due, workflow ID)       the next poll of every stream
    _deadlines  heap of (deadline, seq, waiter) fired by one loop timer, even mid-request
    workers     max_concurrency tasks            take the earliest due stream, poll it, judge, reschedule

* A stream polls on the schedule of its most eager waiter: after each answer, every waiter still waiting
  gives its own next pause (`WaitState.poll_delay`: its policy, its poll count, Retry-After) and the stream
  is due after the shortest.
* A waiter joining a stream is served by the stream's next request: at once if the stream is idle, or, if
  its last answer is younger than the joiner's ``poll.initial`` (at most ``JOIN_AFTER``), once that answer is
  that old (but at the latest half way to the joiner's deadline): waits arriving one by one (a web service's
  requests) cost one request per ``JOIN_AFTER``, not one each. If a request is in flight, its answer serves
  the joiner only when that cannot break ``after`` (`WaitState.trusts_stale`); otherwise the stream polls again
  right after it.
* A waiter leaving (cancelled, timed out, resolved) never disturbs the others; when a stream loses its last
  waiter it is dropped, and its request in flight is cancelled.
* ``on_poll`` hooks never hold up a worker: a coroutine function's runs in a task of its own (`WaitHub._emit`),
  one at a time per waiter; its waiter's next poll and outcome wait for it, no other waiter does.
* Memory: a waiter is a slotted `WaitState` plus its future, a stream a slotted object with the last answer
  kept as compact JSON (for ``WaitTimeoutError.last_status``, parsed only when asked). No parsed status is
  kept. Fan-out enrolls ``ENROLL_CHUNK`` waiters at a time and yields to the loop in between, and expiring
  deadlines is done ``EXPIRE_CHUNK`` at a time, so 100,000 waits do not stall the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import inspect
import itertools
import logging
import math
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._clock import ServerClock
from ._errors import PortableError, WorkflowFailedError
from ._models import WorkflowStatus, status_from_json
from ._polling import WaitOptions, WaitState
from ._telemetry import WaitTelemetry, tracing
from ._validate import unique_workflow_ids

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = ["CLIENT_CLOSED", "ENROLL_CHUNK", "EXPIRE_CHUNK", "JOIN_AFTER", "Outcome", "WaitHub", "poll_round"]

logger = logging.getLogger("portable_wait")

Outcome = WorkflowStatus | PortableError
"""How one workflow's wait ended: its final status, or the error that ended it."""

Deliver = Callable[[int, "Outcome | BaseException | None"], None]

ENROLL_CHUNK = 1000
"""Waiters a fan-out enrolls before it yields to the event loop."""

EXPIRE_CHUNK = 500
"""Deadlines expired in one go before the event loop gets a turn."""

JOIN_AFTER = 1.0
"""A wait joining a stream answered less than this long ago (and less than its own ``poll.initial``) is served
by the stream's next poll at that age, not by an extra one at once."""

WORKER_NAME = "portable_wait.hub.worker"

CLIENT_CLOSED = "this PortableClient is closed; create a new one"
"""What using a closed client raises (`RuntimeError`), from the client and from its hub."""


class _Waiter(WaitState):
    """A wait enrolled in the hub: its state, and where its outcome goes (None once delivered).

    ``joined`` is when it joined its stream, until an answer serves it: then it is that request's send time,
    so "an answer to a request sent after ``joined``" means "not yet served" for every waiter.
    """

    __slots__ = ("hook", "joined", "sink", "telemetry")
    one_round = False

    sink: asyncio.Future[Any] | Deliver | None

    def __init__(self, wid: int, options: WaitOptions, now: float, *, clock: ServerClock | None = None) -> None:
        super().__init__(wid, options, now, clock=clock)
        self.joined = now
        self.telemetry: WaitTelemetry | None = None  # None for `poll_round`'s one-answer waiters
        self.hook: asyncio.Task[None] | None = None  # its async on_poll hook's last call, while it runs


class _RoundWaiter(_Waiter):
    """A waiter for one answer only (`poll_round`): delivers None instead of polling again."""

    __slots__ = ()
    one_round = True


class _Stream:
    """The polls of one workflow, shared by every waiter on it."""

    __slots__ = ("answered", "body", "busy", "due", "timed", "waiters", "wid", "worker")

    def __init__(self, wid: int) -> None:
        self.wid = wid
        self.waiters: list[_Waiter] = []
        self.timed = 0  # waiters with a deadline: only they can need the last body (WaitTimeoutError.last_status)
        self.due: float | None = None  # when the next poll is due; None while taken or dropped
        self.busy = False  # taken by a worker: its request is in flight or its answer being judged
        self.worker: asyncio.Task[None] | None = None  # the worker awaiting this stream's request
        self.body: str | None = None  # the last status answered, as compact JSON
        self.answered = -math.inf  # loop time of the last answer

    def __repr__(self) -> str:
        return f"<stream workflow={self.wid} waiters={len(self.waiters)} due={self.due} busy={self.busy}>"


def _final(waiter: _Waiter, status: WorkflowStatus) -> Outcome:
    """Return a wait's outcome for its final status: the status, or `WorkflowFailedError` if it asked for one."""
    try:
        return waiter.outcome(status)
    except WorkflowFailedError as failed:
        return failed


def _hook_running(waiter: _Waiter) -> bool:
    return waiter.hook is not None and not waiter.hook.done()


def _cancel_requested(task: asyncio.Task[Any] | None) -> bool:
    """Return True if ``task`` has been asked to cancel (Python 3.11+; 3.10 cannot tell)."""
    if sys.version_info >= (3, 11) and task is not None:
        return task.cancelling() > 0
    return False


def _close_unstarted(result: Any) -> None:
    if inspect.getcoroutinestate(result) == inspect.CORO_CREATED:
        result.close()


class WaitHub:
    """Runs every wait of one client. Created by the client on first use; closed by `PortableClient.aclose`."""

    def __init__(self, client: PortableClient) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._cap = client.retry.retry_after_cap
        self._streams: dict[int, _Stream] = {}
        # (due, workflow ID): numbers only, so the garbage collector stops tracking the tuples; an entry is live
        # while its stream's ``due`` is still that time (a stream moved earlier leaves a stale entry behind).
        self._polls: list[tuple[float, int]] = []
        self._deadlines: list[tuple[float, int, _Waiter]] = []
        self._stale_deadlines = 0
        self._seq = itertools.count()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._closed = False
        self._dead: set[int] = set()  # workers that died while the hub was open, to replace
        self._hooks: set[asyncio.Task[None]] = set()  # async on_poll hooks running (see _emit)
        self._stopping: set[asyncio.Task[None] | None] = set()  # hook tasks the hub cancelled (_stop_hook)
        self._deferred: dict[_Waiter, Outcome | None] = {}  # outcomes waiting for their hook to return (_finish)
        self._workers = [self._start_worker(i) for i in range(client.max_concurrency)]

    def _start_worker(self, index: int) -> asyncio.Task[None]:
        task = self._loop.create_task(self._work(), name=f"{WORKER_NAME}-{index}")
        task.add_done_callback(lambda done: self._worker_ended(index, done))
        return task

    def _worker_ended(self, index: int, task: asyncio.Task[None]) -> None:
        # A worker ends only when the hub closes. One that dies otherwise (cancelled from outside, a bug) has
        # failed its stream's waiters (`_work`) and is replaced, or with max_concurrency=1 every wait of the
        # client would hang: a loop iteration later if waits are still enrolled, else when the next one enrolls.
        # Not at once: when asyncio.run() ends it cancels every task, waits included, and a worker started then
        # would be destroyed pending.
        if self._closed or self._loop.is_closed():
            return
        if not task.cancelled():
            logger.error("portable-wait hub worker %d raised %r; it will be replaced", index, task.exception())
        self._dead.add(index)
        self._loop.call_soon(self._revive, False)

    def _revive(self, enrolling: bool) -> None:
        if self._closed or not self._dead or not (enrolling or self._streams):
            return
        logger.warning("replacing %d portable-wait hub worker(s) that ended while the client was open", len(self._dead))
        for index in sorted(self._dead):
            self._workers[index] = self._start_worker(index)
        self._dead.clear()

    def __repr__(self) -> str:
        waiters = sum(len(s.waiters) for s in self._streams.values())
        busy = sum(s.busy for s in self._streams.values())
        return f"<WaitHub streams={len(self._streams)} waiters={waiters} busy={busy} closed={self._closed}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this hub (and its client's session) runs in."""
        return self._loop

    def streams(self) -> dict[int, int]:
        """Return ``{workflow_id: waiters}`` for every live stream (for tests and debugging)."""
        return {wid: len(s.waiters) for wid, s in self._streams.items()}

    # -- enrolling and leaving --------------------------------------------------------------------------------

    def enroll(self, wid: int, options: WaitOptions) -> tuple[_Waiter, asyncio.Future[WorkflowStatus]]:
        """Enroll one wait; its future gets the final status or the error that ended the wait."""
        self._check_open()
        future: asyncio.Future[WorkflowStatus] = self._loop.create_future()
        waiter = _Waiter(wid, options, self._loop.time(), clock=self._client.server_clock)
        waiter.sink = future
        # Started in the caller's context, so the wait's span is a child of the caller's current span.
        waiter.telemetry = self._client._telemetry.wait_started(wid)
        self._join(waiter)
        return waiter, future

    async def enroll_many(
        self, ids: Iterable[int], options: WaitOptions, deliver: Deliver, waiters: list[_Waiter]
    ) -> None:
        """Enroll a wait per ID, ``ENROLL_CHUNK`` at a time, yielding to the loop in between.

        Each outcome is passed to ``deliver(workflow_id, outcome)`` as it comes. The waiters are appended to
        ``waiters`` as they are enrolled, for `leave_all`: the caller must call it if it stops early, including
        when this call is cancelled half-way.
        """
        now = self._loop.time()
        telemetry = self._client._telemetry
        for n, wid in enumerate(ids):
            if n and n % ENROLL_CHUNK == 0:
                await asyncio.sleep(0)
                now = self._loop.time()
            self._check_open()
            waiter = _Waiter(wid, options, now, clock=self._client.server_clock)
            waiter.sink = deliver
            waiter.telemetry = telemetry.wait_started(wid)
            waiters.append(waiter)
            self._join(waiter)

    def leave(self, waiter: _Waiter) -> None:
        """Withdraw a wait (its caller was cancelled or stopped early); the stream's other waiters go on."""
        if waiter.sink is None:
            return
        waiter.sink = None
        if waiter.telemetry is not None:
            waiter.telemetry.cancelled()
        if waiter.hook is not None:
            self._stop_hook(waiter.hook)  # nobody waits for this wait any more, nor for its hook
        self._deferred.pop(waiter, None)
        self._detach(waiter)

    async def leave_all(self, waiters: list[_Waiter]) -> None:
        """Withdraw many waits, ``ENROLL_CHUNK`` at a time; all of them even if cancelled half-way."""
        done = 0
        try:
            for done, waiter in enumerate(waiters):
                if done and done % ENROLL_CHUNK == 0:
                    await asyncio.sleep(0)
                self.leave(waiter)
        finally:
            for waiter in waiters[done:]:  # leave() is idempotent
                self.leave(waiter)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(CLIENT_CLOSED)

    def _join(self, waiter: _Waiter) -> None:
        if self._dead:
            self._revive(True)
        stream = self._streams.get(waiter.wid)
        if stream is None:
            stream = self._streams[waiter.wid] = _Stream(waiter.wid)
        stream.waiters.append(waiter)
        if waiter.deadline is not None:
            stream.timed += 1
            heapq.heappush(self._deadlines, (waiter.deadline, next(self._seq), waiter))
            if waiter.deadline < self._timer_at:
                self._arm()
        # A busy stream serves its joiners when its answer comes (or polls again at once). An idle one polls now,
        # unless it was answered a moment ago: then when that answer is as old as the joiner's own first pause
        # (at most JOIN_AFTER), so that waits joining one by one cost one request per JOIN_AFTER, not each one.
        # A joiner with a deadline is held back at most half way to it: its wait must not end with no status at
        # all, where a wait of its own would have polled at once.
        if not stream.busy:
            first = max(waiter.joined, stream.answered + min(waiter.options.poll.initial, JOIN_AFTER))
            if waiter.deadline is not None:
                first = min(first, waiter.joined + (waiter.deadline - waiter.joined) / 2)
            if stream.due is None or stream.due > first:
                self._schedule(stream, first)

    def _detach(self, waiter: _Waiter) -> None:
        if waiter.deadline is not None:
            self._stale_deadlines += 1
            if self._stale_deadlines > 1000 and self._stale_deadlines > len(self._deadlines) // 2:
                # Cancelled waits with far deadlines would otherwise stay referenced until those deadlines.
                self._deadlines = [entry for entry in self._deadlines if entry[2].sink is not None]
                heapq.heapify(self._deadlines)
                self._stale_deadlines = 0
        stream = self._streams.get(waiter.wid)
        if stream is None:
            return
        try:
            stream.waiters.remove(waiter)
        except ValueError:
            return
        if waiter.deadline is not None:
            stream.timed -= 1
            if not stream.timed:
                stream.body = None
        if not stream.waiters:
            del self._streams[stream.wid]
            stream.due = None
            if stream.worker is not None:  # nobody wants the answer any more
                stream.worker.cancel()

    def _resolve(self, waiter: _Waiter, outcome: Outcome | BaseException | None) -> None:
        sink = waiter.sink
        if sink is None:
            return
        waiter.sink = None
        self._detach(waiter)
        telemetry = waiter.telemetry
        if telemetry is not None and outcome is not None:
            telemetry.polls = waiter.polls
            telemetry.finished(outcome, clock_offset=self._client.server_clock.estimate().offset)
        if isinstance(sink, asyncio.Future):
            if sink.done():
                return
            if isinstance(outcome, BaseException):
                sink.set_exception(outcome)
            else:
                sink.set_result(outcome)
        else:
            sink(waiter.wid, outcome)

    # -- timing ---------------------------------------------------------------------------------------------

    def _schedule(self, stream: _Stream, due: float) -> None:
        stream.due = due
        heapq.heappush(self._polls, (due, stream.wid))
        if self._idle:
            if due <= self._loop.time():
                self._wake_one()
            elif due < self._timer_at:
                self._arm()

    def _arm(self) -> None:
        at = self._deadlines[0][0] if self._deadlines else math.inf
        if self._idle and self._polls:
            at = min(at, self._polls[0][0])
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(at, self._tick)
            self._timer_at = at

    def _tick(self) -> None:
        self._timer, self._timer_at = None, math.inf
        # Re-armed whatever happens: a timer left unarmed would stall every wait of the client.
        try:
            now = self._loop.time()
            deadlines, expired = self._deadlines, 0
            while deadlines and deadlines[0][0] <= now and expired < EXPIRE_CHUNK:
                waiter = heapq.heappop(deadlines)[2]
                if waiter.sink is not None:
                    self._expire(waiter)
                    expired += 1
            if self._polls and self._polls[0][0] <= now:
                self._wake_one()
        finally:
            if not self._closed:
                self._arm()

    def _wake_one(self) -> None:
        idle = self._idle
        while idle:
            parked = idle.popleft()
            if not parked.done():
                parked.set_result(None)
                return

    def _expire(self, waiter: _Waiter) -> None:
        if waiter.hook is not None:
            self._stop_hook(waiter.hook)  # a wait's hooks never outlive it
        if waiter in self._deferred:  # its last answer came in time, only its hook did not return: that answer
            self._resolve_safely(waiter, self._deferred.pop(waiter))
            return
        try:
            last = None
            stream = self._streams.get(waiter.wid)
            if waiter.polls and stream is not None and stream.body is not None:
                last = status_from_json(stream.body)
            outcome: Outcome | BaseException
            if last is not None and waiter.hook is not None and not waiter.keep_polling(last):
                # Skipped while its hook ran, it missed a final answer that came in time: that answer is its
                # outcome, as it would have been without the hook.
                outcome = _final(waiter, last)
            else:
                outcome = waiter.timed_out(last)
        except Exception as error:  # a bug: end this wait with it rather than leave it hanging
            logger.exception("building the timeout of the wait on workflow %s failed", waiter.wid)
            outcome = error
        self._resolve_safely(waiter, outcome)

    def _resolve_safely(self, waiter: _Waiter, outcome: Outcome | BaseException | None) -> None:
        """`_resolve`, for callback-driven paths: a failure (e.g. in telemetry) still ends the wait."""
        sink = waiter.sink
        try:
            self._resolve(waiter, outcome)
        except Exception as error:
            logger.exception("delivering the outcome of the wait on workflow %s failed", waiter.wid)
            waiter.sink = None
            if isinstance(sink, asyncio.Future) and not sink.done():
                sink.set_exception(error)

    # -- polling --------------------------------------------------------------------------------------------

    def _take(self) -> _Stream | None:
        polls, streams = self._polls, self._streams
        now = self._loop.time()
        while polls and polls[0][0] <= now:
            due, wid = heapq.heappop(polls)
            stream = streams.get(wid)
            if stream is not None and stream.due == due:
                stream.due = None
                stream.busy = True
                return stream
        return None

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while True:
            stream = self._take()
            if stream is None:
                parked: asyncio.Future[None] = self._loop.create_future()
                self._idle.append(parked)
                self._arm()
                await parked
                continue
            if self._idle and self._polls and self._polls[0][0] <= self._loop.time():
                self._wake_one()  # more is due: hand it to another worker rather than wait for this poll
            try:
                await self._poll(stream, me)
            except asyncio.CancelledError:
                if not self._closed:  # killed from outside: its waiters must not hang (see _worker_ended)
                    for waiter in list(stream.waiters):
                        self._resolve_safely(
                            waiter, RuntimeError(f"the wait on workflow {waiter.wid} lost its hub worker")
                        )
                raise
            except Exception as error:  # a bug, or the client closed under us: surface it in every waiter
                for waiter in list(stream.waiters):
                    self._resolve(waiter, error)
            finally:
                stream.busy = False

    async def _poll(self, stream: _Stream, me: asyncio.Task[None]) -> None:
        sent = self._loop.time()
        stream.worker = me
        try:
            # The request's span is a child of one waiter's wait span: the first one's, which is usually the
            # wait that opened the stream. Every waiter it serves counts it as one of its polls.
            parent = None
            if tracing():
                parent = next((w.telemetry for w in stream.waiters if w.telemetry is not None), None)
            if parent is None:
                status = await self._client.get_workflow_status(stream.wid)
            else:
                with parent:
                    status = await self._client.get_workflow_status(stream.wid)
        except PortableError as error:
            stream.worker = None
            if self._streams.get(stream.wid) is stream:
                self._answer(stream, sent, None, error)
            return
        except asyncio.CancelledError:
            stream.worker = None
            if self._closed or self._streams.get(stream.wid) is stream:
                raise
            # The stream lost its last waiter mid-request (see _detach): this worker goes on with the next.
            uncancel = getattr(me, "uncancel", None)
            if uncancel is not None:
                uncancel()
            return
        finally:
            stream.worker = None
        if self._streams.get(stream.wid) is stream:
            self._answer(stream, sent, status, None)

    def _answer(self, stream: _Stream, sent: float, status: WorkflowStatus | None, error: PortableError | None) -> None:
        now = stream.answered = self._loop.time()
        if status is not None and stream.timed:
            stream.body = status.model_dump_json(by_alias=True)
        shortest = math.inf
        unserved = False
        for waiter in list(stream.waiters):  # a copy: waiters leave as they finish
            if waiter.sink is None or _hook_running(waiter):
                continue  # a waiter whose hook still runs is judged by the first answer after it returns
            if status is not None and waiter.joined > sent and not waiter.trusts_stale(status):
                unserved = True  # joined after this request left: it wants its first poll now
                continue
            waiter.joined = min(waiter.joined, sent)
            delay = self._judge(waiter, status, error, now)
            if delay is None:
                continue
            if _hook_running(waiter):  # its next poll waits for its hook: the hook schedules it (_hook_returned)
                hook = waiter.hook
                assert hook is not None
                hook.add_done_callback(functools.partial(self._hook_returned, stream, waiter, delay))
            else:
                shortest = min(shortest, delay)
        stream.busy = False
        if self._streams.get(stream.wid) is not stream:
            return
        if unserved:
            due = now
        elif shortest < math.inf:
            due = now + shortest
        else:  # every waiter served left meanwhile, or runs its hook: follow the schedule of those free
            free = [w.poll_delay(None, self._cap) for w in stream.waiters if not _hook_running(w)]
            if not free:
                return  # each hook schedules the stream when it returns
            due = now + min(free)
        if stream.due is None or due < stream.due:
            self._schedule(stream, due)

    def _hook_returned(self, stream: _Stream, waiter: _Waiter, pause: float, _: object) -> None:
        """A waiter's hook returned: poll its stream once the stream's last answer is as old as the waiter's pause.

        From the stream's last answer, not the one the hook was told of: other waiters' polls may have come
        since, and waits with hooks must share requests like any others (one per pause, not one per hook).
        """
        if self._closed or self._streams.get(stream.wid) is not stream or stream.busy:
            return  # gone, or a request is in flight: its answer serves the waiter
        if waiter.sink is None or _hook_running(waiter):
            return  # its wait is over, or a newer hook of it runs (and will call this in turn)
        at = max(stream.answered + pause, self._loop.time())
        if stream.due is None or at < stream.due:
            self._schedule(stream, at)

    def _judge(
        self, waiter: _Waiter, status: WorkflowStatus | None, error: PortableError | None, now: float
    ) -> float | None:
        """Apply one answer to one waiter; return its next pause, or None if its wait is over."""
        waiter.polls += 1
        hook = waiter.options.on_poll is not None
        if status is None:
            assert error is not None
            waiter.on_error(now)
            if waiter.ride_out(error, now):
                delay = waiter.poll_delay(error, self._cap)
                waiter.log_failed_poll(error, delay)
                if hook:
                    self._emit(waiter, now, None, waiter.clip(delay, now), error)
                return self._going_on(waiter, delay)
            if hook:
                self._emit(waiter, now, None, None, error)
            self._finish(waiter, error)
            return None
        waiter.on_status(status)
        if waiter.keep_polling(status):
            delay = waiter.poll_delay(None, self._cap)
            if hook:
                self._emit(waiter, now, status, waiter.clip(delay, now))
            return self._going_on(waiter, delay)
        if hook:
            self._emit(waiter, now, status, None)
        self._finish(waiter, _final(waiter, status))
        return None

    def _going_on(self, waiter: _Waiter, delay: float) -> float | None:
        if waiter.sink is None:  # it ended while its hook was called
            return None
        if waiter.one_round:
            self._finish(waiter, None)
            return None
        return delay

    # -- hooks ----------------------------------------------------------------------------------------------

    def _emit(
        self,
        waiter: _Waiter,
        now: float,
        status: WorkflowStatus | None,
        next_delay: float | None,
        error: PortableError | None = None,
    ) -> None:
        """Tell a waiter's ``on_poll`` hook about a poll without holding up the worker.

        A plain hook is called here. A coroutine function's coroutine runs in a task of its own, so a slow hook
        holds up no worker and no other wait, not even one on the same workflow. Its own wait is not judged
        again until it returns (`_answer` skips it; `_hook_returned` schedules its next poll), as if the hook
        ran inline: a waiter has at most one hook running, and they run in order.
        """
        result = waiter.call_hook(now, status, next_delay, error)
        if result is None:
            return
        task = self._loop.create_task(self._run_hook(waiter, result))
        waiter.hook = task
        self._hooks.add(task)
        task.add_done_callback(self._hook_done)
        if inspect.iscoroutine(result):  # cancelled before its first step, it never ran: no "never awaited"
            task.add_done_callback(lambda _: _close_unstarted(result))

    async def _run_hook(self, waiter: _Waiter, result: Awaitable[object]) -> None:
        # Awaited in this task, which runs nothing else: a CancelledError here is the hub's cancellation if the
        # hub asked for one (`_stop_hook`; on 3.11+ also anyone's, by the cancel count), else the hook's own (it
        # awaited something someone else cancelled), a hook error like any other. No task within a task, on 3.10
        # either, so a hook that closes the client is the task `close` leaves alone.
        me = asyncio.current_task()
        try:
            await result
        except asyncio.CancelledError:
            if me in self._stopping or _cancel_requested(me):
                raise
            if sys.version_info < (3, 11):
                # No cancel count: the hook's own, or a cancellation from outside (asyncio.run() ending cancels
                # every task), cannot be told apart. Either way the hook is over; not worth an error in the log.
                logger.debug("on_poll hook for workflow %d ended with CancelledError", waiter.wid, exc_info=True)
                return
            logger.exception("on_poll hook raised CancelledError for workflow %d; ignored", waiter.wid)
        except Exception:
            logger.exception("on_poll hook raised for workflow %d; ignored", waiter.wid)
        finally:
            if waiter.hook is me:
                waiter.hook = None  # the waiter keeps no finished task

    def _hook_done(self, task: asyncio.Task[None]) -> None:
        self._hooks.discard(task)
        self._stopping.discard(task)

    def _stop_hook(self, task: asyncio.Task[None]) -> None:
        if task.done():  # e.g. run to its end inside create_task, by an eager task factory
            return
        self._stopping.add(task)
        task.cancel()

    def _finish(self, waiter: _Waiter, outcome: Outcome | None) -> None:
        """End a wait, once the hook told about its last poll has returned (a wait's hooks have all returned
        when it does). Its polls stop at once; its deadline, if it passes meanwhile, still ends it on time."""
        hook = waiter.hook
        if hook is None or hook.done():
            self._resolve(waiter, outcome)
            return
        self._detach(waiter)
        self._deferred[waiter] = outcome
        hook.add_done_callback(lambda _: self._resolve_deferred(waiter))

    def _resolve_deferred(self, waiter: _Waiter) -> None:
        if waiter in self._deferred:  # not already ended by its deadline, its cancellation or the hub's closing
            self._resolve_safely(waiter, self._deferred.pop(waiter))

    # -- closing --------------------------------------------------------------------------------------------

    def abandon(self) -> None:
        """Mark the hub closed without touching its loop: that loop has ended, and its tasks with it."""
        self._closed = True
        self._timer = None
        self._hooks.clear()
        self._stopping.clear()
        self._deferred.clear()
        self._streams.clear()
        self._polls.clear()
        self._deadlines.clear()

    async def close(self) -> None:
        """Stop every worker; waits still running fail with RuntimeError (the client is closing)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Not the task closing the client, which may be a wait's hook: it goes on once the client is closed.
        me = asyncio.current_task()
        tasks = [task for task in (*self._workers, *self._hooks) if task is not me]
        for task in tasks:
            if task in self._hooks:
                self._stop_hook(task)
            else:
                task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:  # even if closing is itself cancelled: no wait may be left hanging
            for stream in list(self._streams.values()):
                for waiter in list(stream.waiters):
                    self._resolve_safely(
                        waiter, RuntimeError(f"the PortableClient was closed while waiting on workflow {waiter.wid}")
                    )
            self._streams.clear()
            self._polls.clear()
            self._deadlines.clear()


async def poll_round(client: PortableClient, states: Mapping[int, WaitState]) -> dict[int, Outcome | None]:
    """Poll every workflow of ``states`` once through the client's hub; judge each answer by its state.

    The building block of a wait that does not stay in memory between polls (Airflow's poke and reschedule
    modes): keep the states between calls (in memory, or as `WaitState.snapshot` dicts restored with
    `WaitState.restore` in another process), and call this once per poke. Each state is updated in place
    (``polls``, ``seen_active``, ``failing_since``), so ``after`` and the outage tolerance hold across calls.
    The polls share the hub's streams: a workflow that other waits of this client are polling is not polled
    twice.

    Args:
        client: An open `PortableClient`.
        states: ``{workflow_id: WaitState}``, each built with the wait's options (``WaitOptions.build``).

    Returns:
        ``{workflow_id: outcome}`` in the order of ``states``: the final `WorkflowStatus`, the `PortableError`
        that ended the wait (`WorkflowFailedError` with ``raise_on_failure``, `WaitTimeoutError` past the
        state's deadline, a permanent error, or an outage longer than ``outage_tolerance``), or None while
        the workflow is still to be waited on (running, or a failure being ridden out).

    Raises:
        TypeError, ValueError: A bad ID, or a state whose ``wid`` is not its key.
    """
    ids = unique_workflow_ids(states)
    for wid in ids:
        if not isinstance(states[wid], WaitState) or states[wid].wid != wid:
            raise ValueError(f"states[{wid}] must be a WaitState for workflow {wid}")
    hub = client._wait_hub()
    results: dict[int, Outcome | None] = {}
    pending: dict[int, asyncio.Future[Any]] = {}
    waiters: dict[int, _RoundWaiter] = {}
    for wid in ids:
        state = states[wid]
        if state.deadline is not None and hub.loop.time() >= state.deadline:
            results[wid] = state.timed_out(None)
            continue
        waiter = _RoundWaiter(wid, state.options, hub.loop.time(), clock=client.server_clock)
        _copy_state(state, waiter)
        future: asyncio.Future[Any] = hub.loop.create_future()
        waiter.sink = future
        waiters[wid] = waiter
        pending[wid] = future
        hub._join(waiter)
    try:
        for wid, future in pending.items():
            try:
                results[wid] = await future
            except PortableError as error:
                results[wid] = error
    finally:
        for waiter in waiters.values():
            hub.leave(waiter)
            _copy_state(waiter, states[waiter.wid])
    return {wid: results[wid] for wid in ids}


def _copy_state(source: WaitState, target: WaitState) -> None:
    target.started = source.started
    target.deadline = source.deadline
    target.seen_active = source.seen_active
    target.failing_since = source.failing_since
    target.polls = source.polls
