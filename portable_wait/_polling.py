"""`wait_for_completion`: poll one workflow until its run is over."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from . import _retry
from ._config import PollPolicy
from ._errors import PortableError, WaitTimeoutError, WorkflowFailedError, is_transient
from ._models import Disposition, Lifecycle, WorkflowStatus
from ._validate import check_timeout, check_workflow_id

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = ["OnPoll", "PollEvent", "WaitOptions", "WaitState", "wait_for_completion", "wait_with_options"]

logger = logging.getLogger("portable_wait")
T = TypeVar("T")
_DEFAULT_POLL = PollPolicy()


@dataclass(frozen=True, slots=True)
class PollEvent:
    """What an ``on_poll`` hook is told after every poll.

    Attributes:
        workflow_id: The workflow polled.
        attempt: The poll's number for this wait, from 1.
        status: The status this poll returned, or None if it failed (see ``error``).
        elapsed: Seconds since the wait started.
        next_delay: Seconds until the next poll, or None if this was the last one.
        error: The error of a failed poll (after the client's own retries), else None.
    """

    workflow_id: int
    attempt: int
    status: WorkflowStatus | None
    elapsed: float
    next_delay: float | None
    error: PortableError | None = None


OnPoll = Callable[[PollEvent], "Awaitable[object] | object"]


@dataclass(frozen=True, slots=True)
class WaitOptions:
    """The keyword arguments of a wait, validated once (fan-out shares one instance across all waiters)."""

    timeout: float | None = None
    poll: PollPolicy = _DEFAULT_POLL
    raise_on_failure: bool = True
    after: datetime | None = None
    on_poll: OnPoll | None = None

    @classmethod
    def build(
        cls,
        *,
        timeout: float | None = None,
        poll: PollPolicy = _DEFAULT_POLL,
        raise_on_failure: bool = True,
        after: datetime | None = None,
        on_poll: OnPoll | None = None,
    ) -> WaitOptions:
        """Validate the arguments and return the options, or raise TypeError/ValueError naming the problem."""
        if not isinstance(poll, PollPolicy):
            raise TypeError(f"poll must be a PollPolicy, got {type(poll).__name__}")
        if not isinstance(raise_on_failure, bool):
            raise TypeError(f"raise_on_failure must be a bool, got {type(raise_on_failure).__name__}")
        if after is not None:
            if not isinstance(after, datetime):
                raise TypeError(f"after must be a datetime, got {type(after).__name__}")
            if after.tzinfo is None or after.utcoffset() is None:
                raise ValueError(
                    "after must be timezone-aware, e.g. datetime.now(timezone.utc); a naive datetime is ambiguous"
                )
        if on_poll is not None and not callable(on_poll):
            raise TypeError(f"on_poll must be callable, got {type(on_poll).__name__}")
        return cls(check_timeout(timeout), poll, raise_on_failure, after, on_poll)


async def wait_for_completion(
    client: PortableClient,
    workflow_id: int,
    *,
    timeout: float | None = None,
    poll: PollPolicy = _DEFAULT_POLL,
    raise_on_failure: bool = True,
    after: datetime | None = None,
    on_poll: OnPoll | None = None,
) -> WorkflowStatus:
    """Poll a workflow until its lifecycle is NOT_RUNNING, and return its final status.

    The first poll is immediate; then the pause grows per ``poll``. A poll whose request fails even after the
    client's retries (5xx, 429, network, timeout, a body that is not JSON) does not end the wait: it is logged,
    reported to ``on_poll``, and polling goes on, until ``poll.outage_tolerance`` seconds of consecutive
    failure. Permanent errors (401, 403, 404, a body of the wrong shape) raise at once.

    Args:
        client: An open `PortableClient`.
        workflow_id: A positive int.
        timeout: Seconds for the whole wait, or None to wait as long as it takes. At the deadline the wait
            stops, even mid-request or mid-pause, with `WaitTimeoutError`.
        poll: The polling schedule. Default ``PollPolicy()``.
        raise_on_failure: If True (the default), a FAILED run raises `WorkflowFailedError`; if False, its
            status is returned.
        after: A timezone-aware datetime, typically when you triggered the run. A NOT_RUNNING status then
            counts as final only if its ``completed_at >= after``, or if this wait has itself seen the workflow
            PENDING or RUNNING. Without it, a wait that starts right after a trigger can return the previous
            run's result. Compare clocks: ``after`` is yours, ``completed_at`` is Portable's.
        on_poll: Called after every poll with a `PollEvent`; may be a coroutine function (it is awaited, so
            keep it quick). An exception it raises is logged and ignored.

    Returns:
        The final `WorkflowStatus`. Its ``disposition`` is SUCCEEDED, FAILED (with ``raise_on_failure=False``),
        NONE if the workflow has never run, or UNKNOWN for a disposition this version does not know.

    Raises:
        WorkflowFailedError: The run FAILED (unless ``raise_on_failure=False``).
        WaitTimeoutError: ``timeout`` passed; a `TimeoutError` too.
        AuthenticationError, PermissionDeniedError, WorkflowNotFoundError: At once, never retried.
        PortableAPIError, TransportError, InvalidResponseError: The last error, once failures lasted longer
            than ``poll.outage_tolerance``, or at once for a body of the wrong shape.
        TypeError, ValueError: Bad arguments, before any request.
    """
    wid = check_workflow_id(workflow_id)
    options = WaitOptions.build(
        timeout=timeout, poll=poll, raise_on_failure=raise_on_failure, after=after, on_poll=on_poll
    )
    return await wait_with_options(client, wid, options)


async def wait_with_options(client: PortableClient, wid: int, options: WaitOptions) -> WorkflowStatus:
    """Run one wait with validated options: the tenacity poll loop of `wait_for_completion`."""
    state = WaitState(wid, options, asyncio.get_running_loop().time())
    return await _TenacityWait(client, state).run()


class WaitState:
    """One workflow's wait: what it has seen, and every decision about it. No I/O and no loop of its own.

    `wait_for_completion` drives it with tenacity; fan-out drives thousands of them from one scheduler
    (`_fanout`), so it is kept small (``__slots__``, the options shared).
    """

    __slots__ = ("deadline", "failing_since", "last_status", "options", "polls", "seen_active", "started", "wid")

    def __init__(self, wid: int, options: WaitOptions, now: float) -> None:
        self.wid = wid
        self.options = options
        self.started = now
        self.deadline = None if options.timeout is None else now + options.timeout
        self.last_status: WorkflowStatus | None = None
        self.seen_active = False
        self.failing_since: float | None = None
        self.polls = 0

    def on_status(self, status: WorkflowStatus) -> None:
        """Record a poll's answer."""
        self.failing_since = None
        self.last_status = status
        if status.lifecycle is not Lifecycle.NOT_RUNNING:
            self.seen_active = True
        logger.debug(
            "workflow %d poll %d: %s/%s", self.wid, self.polls, status.lifecycle.value, status.disposition.value
        )

    def on_error(self, now: float) -> None:
        """Record a failed poll."""
        if self.failing_since is None:
            self.failing_since = now

    def keep_polling(self, status: WorkflowStatus) -> bool:
        """Return True while ``status`` is not this wait's final answer (see ``after`` in the README)."""
        if status.lifecycle is not Lifecycle.NOT_RUNNING:
            return True
        after = self.options.after
        if after is None or self.seen_active:
            return False
        # Still the previous run's result (or none at all): the run we wait for has not shown up yet.
        return status.completed_at is None or status.completed_at < after

    def ride_out(self, error: BaseException, now: float) -> bool:
        """Return True if a failed poll is part of an outage to wait out rather than raise."""
        if not is_transient(error) or self.failing_since is None:
            return False
        return now - self.failing_since < self.options.poll.outage_tolerance

    def next_delay(self, error: BaseException | None, now: float, retry_after_cap: float) -> float:
        """Return the pause before the next poll: the policy's, at least ``Retry-After``, clipped to the deadline."""
        delay = self.options.poll.delay(self.polls - 1)
        retry_after = _retry.retry_after_of(error)
        if retry_after is not None:
            delay = max(delay, min(retry_after, retry_after_cap))
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - now))
        return delay

    def outcome(self, status: WorkflowStatus) -> WorkflowStatus:
        """Return the final status, or raise `WorkflowFailedError` for a FAILED run when asked to."""
        if status.disposition is Disposition.FAILED and self.options.raise_on_failure:
            raise WorkflowFailedError(status)
        return status

    def timed_out(self) -> WaitTimeoutError:
        """Return the error for a wait whose deadline passed."""
        assert self.options.timeout is not None
        return WaitTimeoutError(self.wid, self.options.timeout, self.last_status)

    def log_failed_poll(self, error: BaseException, delay: float) -> None:
        logger.warning(
            "workflow %d: poll %d failed (%s); still polling, next in %.1f s", self.wid, self.polls, error, delay
        )

    async def emit(
        self, now: float, status: WorkflowStatus | None, next_delay: float | None, error: BaseException | None = None
    ) -> None:
        """Tell the ``on_poll`` hook about a poll; log, never raise, what the hook raises."""
        hook = self.options.on_poll
        if hook is None:
            return
        reported = error if isinstance(error, PortableError) else None
        event = PollEvent(self.wid, self.polls, status, now - self.started, next_delay, reported)
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_poll hook raised for workflow %d; ignored", self.wid)


class _TenacityWait:
    """`wait_for_completion`'s loop: tenacity retries on the result, with the deadline over everything."""

    __slots__ = ("client", "loop", "state", "telemetry")

    def __init__(self, client: PortableClient, state: WaitState) -> None:
        self.client = client
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.telemetry = client._telemetry.wait_started(state.wid)

    async def run(self) -> WorkflowStatus:
        try:
            status = await self._run()
        except BaseException as error:
            self.telemetry.finished(error)
            raise
        self.telemetry.finished(status)
        return status

    async def _run(self) -> WorkflowStatus:
        state = self.state
        retrying = _retry.poll_retrying(
            keep_polling=state.keep_polling,
            ride_out=lambda error: state.ride_out(error, self.loop.time()),
            next_delay=self.next_delay,
            before_sleep=self.before_sleep,
        )
        try:
            status: WorkflowStatus = await _until(state.deadline, retrying(self.poll_once))
        except TimeoutError:
            if state.deadline is None or self.loop.time() < state.deadline:
                raise
            raise state.timed_out() from None
        except PortableError as error:
            await state.emit(self.loop.time(), None, None, error)
            raise
        await state.emit(self.loop.time(), status, None)
        return state.outcome(status)

    async def poll_once(self) -> WorkflowStatus:
        state = self.state
        state.polls += 1
        try:
            with self.telemetry.polling():
                status = await self.client.get_workflow_status(state.wid)
        except PortableError:
            state.on_error(self.loop.time())
            raise
        state.on_status(status)
        return status

    def next_delay(self, error: BaseException | None) -> float:
        return self.state.next_delay(error, self.loop.time(), self.client.retry.retry_after_cap)

    async def before_sleep(self, error: BaseException | None, delay: float) -> None:
        if error is not None:
            self.state.log_failed_poll(error, delay)
            await self.state.emit(self.loop.time(), None, delay, error)
        else:
            await self.state.emit(self.loop.time(), self.state.last_status, delay)


if sys.version_info >= (3, 11):

    async def _until(deadline: float | None, coro: Coroutine[Any, Any, T]) -> T:
        async with asyncio.timeout_at(deadline):
            return await coro

else:  # pragma: no cover - Python 3.10

    async def _until(deadline: float | None, coro: Coroutine[Any, Any, T]) -> T:
        if deadline is None:
            return await coro
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            return await asyncio.wait_for(coro, remaining)
        except asyncio.TimeoutError:
            raise TimeoutError from None
