"""`wait_for_completion`, the wait keywords, and `WaitState`: every decision of a wait, with no I/O.

A wait is run by its client's hub (`_hub.WaitHub`): one driver for every wait of the client. This module keeps
what a wait *decides* (when a status is final, when a failure is ridden out, how long to pause); the hub keeps
when to send the request, and who shares it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict

from ._clock import UNKNOWN_OFFSET, ServerClock, completed_after
from ._config import DEFAULT_POLL, PollPolicy, honour_retry_after
from ._errors import PortableError, WaitTimeoutError, WorkflowFailedError, is_transient
from ._models import Disposition, Lifecycle, WorkflowStatus
from ._retry import retry_after_of
from ._validate import check_bool, check_int, check_keywords, check_timeout, check_workflow_id

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = [
    "WAIT_KEYWORDS",
    "OnPoll",
    "PollEvent",
    "WaitKwargs",
    "WaitOptions",
    "WaitState",
    "wait_for_completion",
]

logger = logging.getLogger("portable_wait")


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


class WaitKwargs(TypedDict, total=False):
    """The keywords of a wait, declared once for every function that takes them (see `wait_for_completion`)."""

    timeout: float | None
    poll: PollPolicy
    raise_on_failure: bool
    after: datetime | None
    on_poll: OnPoll | None


WAIT_KEYWORDS = frozenset(WaitKwargs.__annotations__)


@dataclass(frozen=True, slots=True)
class WaitOptions:
    """The keyword arguments of a wait, validated once (a fan-out shares one instance across all its waiters)."""

    timeout: float | None = None
    poll: PollPolicy = DEFAULT_POLL
    raise_on_failure: bool = True
    after: datetime | None = None
    on_poll: OnPoll | None = None

    @classmethod
    def build(
        cls,
        *,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        raise_on_failure: bool = True,
        after: datetime | None = None,
        on_poll: OnPoll | None = None,
    ) -> WaitOptions:
        """Validate the arguments and return the options, or raise TypeError/ValueError naming the problem."""
        if not isinstance(poll, PollPolicy):
            raise TypeError(f"poll must be a PollPolicy, got {type(poll).__name__}")
        check_bool(raise_on_failure, "raise_on_failure")
        if after is not None:
            if not isinstance(after, datetime):
                raise TypeError(f"after must be a datetime, got {type(after).__name__}")
            if after.tzinfo is None or after.utcoffset() is None:
                raise ValueError(
                    "after must be timezone-aware, e.g. datetime.now(timezone.utc); a naive datetime is ambiguous"
                )
            check_after_range(after)
        if on_poll is not None and not callable(on_poll):
            raise TypeError(f"on_poll must be callable, got {type(on_poll).__name__}")
        seconds = check_timeout(timeout)
        if seconds is None and poll is DEFAULT_POLL and raise_on_failure and after is None and on_poll is None:
            return _DEFAULT_OPTIONS  # most waits: one shared instance instead of one each
        return cls(seconds, poll, raise_on_failure, after, on_poll)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], where: str) -> WaitOptions:
        """Validate ``**wait_kwargs`` of ``where()``: an unknown keyword is a TypeError naming the accepted ones."""
        check_keywords(kwargs, WAIT_KEYWORDS, where)
        return cls.build(**kwargs)


_DEFAULT_OPTIONS = WaitOptions()


async def wait_for_completion(
    client: PortableClient,
    workflow_id: int,
    *,
    timeout: float | None = None,
    poll: PollPolicy = DEFAULT_POLL,
    raise_on_failure: bool = True,
    after: datetime | None = None,
    on_poll: OnPoll | None = None,
) -> WorkflowStatus:
    """Poll a workflow until its lifecycle is NOT_RUNNING, and return its final status.

    The first poll is immediate (unless another wait on the workflow through this client was answered less
    than ``min(poll.initial, 1 s)`` ago: then it is that stream's next poll, at that age, and at the latest
    half way to ``timeout``); then the pause grows per ``poll``. A poll whose request fails even after the
    client's retries (5xx, 429, network, timeout, a body that is not JSON) does not end the wait: it is logged,
    reported to ``on_poll``, and polling goes on, until ``poll.outage_tolerance`` seconds of consecutive
    failure. Permanent errors (401, 403, 404, a body of the wrong shape) raise at once.

    The wait runs in the client's hub: waits on the same workflow through one client share one poll stream
    (one request serves them all; see the README's "One hub per client"), each judged by its own arguments.

    Args:
        client: An open `PortableClient`.
        workflow_id: A positive int.
        timeout: Seconds for the whole wait, or None to wait as long as it takes. At the deadline the wait
            stops, even mid-request or mid-pause, with `WaitTimeoutError`.
        poll: The polling schedule. Default ``PollPolicy()``.
        raise_on_failure: If True (the default), a FAILED run raises `WorkflowFailedError`; if False, its
            status is returned.
        after: A timezone-aware datetime, read *before* you triggered the run. A NOT_RUNNING status then
            counts as final only if it completed after ``after``, or if this wait has itself seen the workflow
            PENDING or RUNNING. Without it, a wait that starts right after a trigger can return the previous
            run's result. ``after`` (your clock) is compared with ``completed_at`` on Portable's clock, as
            estimated from its ``Date`` headers (``client.server_clock``), less a margin of about half a second
            (`portable_wait._clock`). If the wait times out having seen only an older result,
            `WaitTimeoutError` says so.
        on_poll: Called after every poll with a `PollEvent`; may be a coroutine function, which runs in a
            task of its own (the workflow's next poll, and the wait's return, wait for it; see the README's
            "API overview"). An exception it raises is logged and ignored.

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
        RuntimeError: The client was closed before or during the wait.
    """
    wid = check_workflow_id(workflow_id)
    options = WaitOptions.build(
        timeout=timeout, poll=poll, raise_on_failure=raise_on_failure, after=after, on_poll=on_poll
    )
    hub = client._wait_hub()
    # Awaited here, not in a helper coroutine: every frame is kept alive for as long as the wait runs, and a
    # web service holds thousands of these at once.
    waiter, future = hub.enroll(wid, options)
    try:
        return await future
    except asyncio.CancelledError:
        hub.leave(waiter)
        raise


class WaitState:
    """One wait on one workflow: what it has seen, and every decision about it. No I/O and no loop of its own.

    The hub drives thousands of them, so it is small (``__slots__``, the options shared) and keeps no parsed
    status: the hub rebuilds ``WaitTimeoutError.last_status`` from the stream's last body when it is needed.
    Times are the event loop's (`loop.time()`); `snapshot` and `restore` carry a state across processes on
    the wall clock.

    ``clock`` is the client's `ServerClock` (``client.server_clock``), read when the ``after`` rule compares a
    ``completedAt`` (Portable's clock) with ``after`` (ours); None assumes the two clocks agree.
    """

    __slots__ = ("clock", "deadline", "failing_since", "options", "polls", "seen_active", "started", "wid")

    def __init__(self, wid: int, options: WaitOptions, now: float, *, clock: ServerClock | None = None) -> None:
        self.wid = wid
        self.clock = clock
        self.options = options
        self.started = now
        self.deadline = None if options.timeout is None else now + options.timeout
        self.seen_active = False
        self.failing_since: float | None = None
        self.polls = 0

    def __repr__(self) -> str:
        return (
            f"<WaitState workflow={self.wid} polls={self.polls} seen_active={self.seen_active} "
            f"failing_since={self.failing_since} deadline={self.deadline}>"
        )

    def on_status(self, status: WorkflowStatus) -> None:
        """Record a poll's answer."""
        self.failing_since = None
        if status.lifecycle is not Lifecycle.NOT_RUNNING:
            self.seen_active = True
        if logger.isEnabledFor(logging.DEBUG):  # this runs for every answer to every waiter
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
        if status.completed_at is None:
            return True
        estimate = self.clock.estimate() if self.clock is not None else UNKNOWN_OFFSET
        return not completed_after(status.completed_at, after, offset=estimate.offset, margin=estimate.margin)

    def trusts_stale(self, status: WorkflowStatus) -> bool:
        """Return True if an answer to a request sent before this wait began may still serve as its first.

        Without ``after`` any current answer will do. With it, a RUNNING answer from before the wait began
        could be the previous run's, and would count as "seen active": only an answer that is final by
        ``completed_at`` alone is taken.
        """
        if self.options.after is None:
            return True
        return status.lifecycle is Lifecycle.NOT_RUNNING and not self.seen_active and not self.keep_polling(status)

    def ride_out(self, error: PortableError, now: float) -> bool:
        """Return True if a failed poll is part of an outage to wait out rather than raise."""
        if not is_transient(error) or self.failing_since is None:
            return False
        return now - self.failing_since < self.options.poll.outage_tolerance

    def poll_delay(self, error: PortableError | None, retry_after_cap: float) -> float:
        """Return the pause before the next poll by the policy, at least ``Retry-After`` (no deadline clip)."""
        return honour_retry_after(self.options.poll.delay(self.polls - 1), retry_after_of(error), retry_after_cap)

    def next_delay(self, error: PortableError | None, now: float, retry_after_cap: float) -> float:
        """Return the pause before the next poll: the policy's, at least ``Retry-After``, clipped to the deadline."""
        return self.clip(self.poll_delay(error, retry_after_cap), now)

    def clip(self, delay: float, now: float) -> float:
        """Return ``delay`` shortened so that it ends by the deadline."""
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - now))
        return delay

    def outcome(self, status: WorkflowStatus) -> WorkflowStatus:
        """Return the final status, or raise `WorkflowFailedError` for a FAILED run when asked to."""
        if status.disposition is Disposition.FAILED and self.options.raise_on_failure:
            raise WorkflowFailedError(status)
        return status

    def timed_out(self, last_status: WorkflowStatus | None) -> WaitTimeoutError:
        """Return the error for a wait whose deadline passed; ``last_status`` is the last answer it saw."""
        assert self.options.timeout is not None
        return WaitTimeoutError(self.wid, self.options.timeout, last_status, after=self.options.after)

    def log_failed_poll(self, error: PortableError, delay: float) -> None:
        logger.warning(
            "workflow %d: poll %d failed (%s); still polling, next in %.1f s", self.wid, self.polls, error, delay
        )

    def call_hook(
        self, now: float, status: WorkflowStatus | None, next_delay: float | None, error: PortableError | None = None
    ) -> Awaitable[object] | None:
        """Call the ``on_poll`` hook about a poll; return what is left to await (a coroutine function's
        coroutine, which the hub runs in a task of its own: `WaitHub._emit`), else None. What a plain hook raises
        is logged, never raised."""
        hook = self.options.on_poll
        if hook is None:
            return None
        event = PollEvent(self.wid, self.polls, status, now - self.started, next_delay, error)
        # A plain call cannot be cancelled from outside, so a CancelledError raised synchronously is always the
        # hook's own: a hook error, like any other.
        try:
            result = hook(event)
        except (Exception, asyncio.CancelledError):
            logger.exception("on_poll hook raised for workflow %d; ignored", self.wid)
            return None
        return result if inspect.isawaitable(result) else None

    def snapshot(self, now: float) -> dict[str, Any]:
        """Return this state as a JSON-able dict, its times on the wall clock (Unix seconds), for `restore`.

        ``now`` is the event loop's time the snapshot is taken at. The options are not included: the caller
        passes them again to `restore` (Airflow keeps them in the task's arguments).
        """
        wall = time.time()

        def on_wall(t: float | None) -> float | None:
            return None if t is None else wall - (now - t)

        return {
            "workflow_id": self.wid,
            "started": on_wall(self.started),
            "seen_active": self.seen_active,
            "failing_since": on_wall(self.failing_since),
            "polls": self.polls,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any], options: WaitOptions, now: float) -> WaitState:
        """Rebuild a state from `snapshot`'s dict, possibly in another process; ``now`` is the loop's time.

        The deadline is ``started + options.timeout`` on the wall clock, so a wait resumed later keeps its
        original deadline.

        Raises:
            ValueError: ``data`` is not a snapshot.
        """
        try:
            wid = check_workflow_id(data["workflow_id"])
            wall = time.time()
            state = cls(wid, options, now - (wall - float(data["started"])))
            state.seen_active = check_bool(data["seen_active"], "seen_active")
            failing = data["failing_since"]
            state.failing_since = None if failing is None else now - (wall - float(failing))
            state.polls = check_int(data["polls"], "polls", minimum=0)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a WaitState snapshot ({type(exc).__name__}: {exc}): {dict(data)!r}") from None
        return state


AFTER_RANGE = (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc))
"""The ``after`` values accepted: no Portable run predates 1970, and the top leaves room for clock arithmetic."""


def check_after_range(after: datetime) -> None:
    """Raise ValueError naming ``after`` if it is outside `AFTER_RANGE` (an aware datetime is assumed)."""
    low, high = AFTER_RANGE
    try:
        inside = low <= after <= high
    except OverflowError:  # e.g. datetime.max with a negative offset: beyond what UTC can hold
        inside = False
    if not inside:
        raise ValueError(
            f"after must be between {low:%Y-%m-%d} and {high:%Y-%m-%d} UTC (the time you triggered the run, read "
            f"before triggering), got {after.isoformat()}"
        )
