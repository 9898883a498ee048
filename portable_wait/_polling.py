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

from tenacity import RetryCallState

from . import _retry
from ._config import PollPolicy
from ._errors import PortableError, WaitTimeoutError, WorkflowFailedError, is_transient
from ._models import Disposition, Lifecycle, WorkflowStatus
from ._validate import check_timeout, check_workflow_id

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = ["OnPoll", "PollEvent", "WaitOptions", "wait_for_completion"]

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
    """Run one wait with validated options (the shared path of `wait_for_completion` and fan-out)."""
    return await _Waiter(client, wid, options).run()


class _Waiter:
    __slots__ = (
        "client",
        "deadline",
        "failing_since",
        "last_status",
        "loop",
        "options",
        "polls",
        "seen_active",
        "started",
        "wid",
    )

    def __init__(self, client: PortableClient, wid: int, options: WaitOptions) -> None:
        self.client = client
        self.wid = wid
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline = None if options.timeout is None else self.started + options.timeout
        self.last_status: WorkflowStatus | None = None
        self.seen_active = False
        self.failing_since: float | None = None
        self.polls = 0

    async def run(self) -> WorkflowStatus:
        retrying = _retry.poll_retrying(
            keep_polling=self.keep_polling,
            ride_out=self.ride_out,
            wait=self.next_delay,
            before_sleep=self.before_sleep,
        )
        try:
            status: WorkflowStatus = await _until(self.deadline, retrying(self.poll_once))
        except TimeoutError:
            if self.deadline is None or self.options.timeout is None or self.loop.time() < self.deadline:
                raise
            raise WaitTimeoutError(self.wid, self.options.timeout, self.last_status) from None
        except PortableError as error:
            await self.emit(None, None, error=error)
            raise
        await self.emit(status, None)
        if status.disposition is Disposition.FAILED and self.options.raise_on_failure:
            raise WorkflowFailedError(status)
        return status

    async def poll_once(self) -> WorkflowStatus:
        self.polls += 1
        try:
            status = await self.client.get_workflow_status(self.wid)
        except PortableError:
            if self.failing_since is None:
                self.failing_since = self.loop.time()
            raise
        self.failing_since = None
        self.last_status = status
        if status.lifecycle is not Lifecycle.NOT_RUNNING:
            self.seen_active = True
        logger.debug(
            "workflow %d poll %d: %s/%s",
            self.wid,
            self.polls,
            status.lifecycle.value,
            status.disposition.value,
        )
        return status

    def keep_polling(self, status: WorkflowStatus) -> bool:
        if status.lifecycle is not Lifecycle.NOT_RUNNING:
            return True
        after = self.options.after
        if after is None or self.seen_active:
            return False
        # Still the previous run's result (or none at all): the run we wait for has not shown up yet.
        return status.completed_at is None or status.completed_at < after

    def ride_out(self, error: BaseException) -> bool:
        if not is_transient(error) or self.failing_since is None:
            return False
        return self.loop.time() - self.failing_since < self.options.poll.outage_tolerance

    def next_delay(self, state: RetryCallState) -> float:
        delay = self.options.poll.delay(self.polls - 1)
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = _retry.retry_after_of(error)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.client.retry.retry_after_cap))
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - self.loop.time()))
        return delay

    async def before_sleep(self, state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action is not None else None
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            error = outcome.exception()
            logger.warning(
                "workflow %d: poll %d failed (%s); still polling, next in %.1f s",
                self.wid,
                self.polls,
                error,
                delay,
            )
            await self.emit(None, delay, error=error if isinstance(error, PortableError) else None)
        else:
            await self.emit(self.last_status, delay)

    async def emit(self, status: WorkflowStatus | None, next_delay: float | None, *, error: Any = None) -> None:
        hook = self.options.on_poll
        if hook is None:
            return
        event = PollEvent(self.wid, self.polls, status, self.loop.time() - self.started, next_delay, error)
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_poll hook raised for workflow %d; ignored", self.wid)


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
