"""Policies and defaults: how often to poll, how to retry a failed request, and the Retry-After rule.

Both policies are frozen dataclasses validated in ``__post_init__``, so a bad value fails where it is written,
not an hour into a wait. All durations are float seconds. The defaults every entry point shares (the client,
`sync`, the CLI, Airflow) are the named constants below: change one here and every caller follows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ._retry import exponential_backoff
from ._validate import check_int, check_number, check_seconds

__all__ = [
    "DEFAULT_FIRST_CONTACT_TIMEOUT",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_POLL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_RETRY",
    "MAX_BODY_BYTES",
    "MAX_CONCURRENCY_LIMIT",
    "PollPolicy",
    "RetryPolicy",
    "honour_retry_after",
]

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one HTTP request may take (`PortableClient`'s ``request_timeout``)."""

DEFAULT_MAX_CONCURRENCY = 10
"""Requests in flight at once per client, and the size of its connection pool."""

MAX_CONCURRENCY_LIMIT = 1000
"""The largest ``max_concurrency`` a client accepts: the hub runs a task per slot, and no Portable account
serves more requests at once (a million slots once took a gigabyte and most of a minute to start)."""

MAX_BODY_BYTES = 1024 * 1024
"""The largest response body read, in bytes (1 MiB). A status is a few KB; a longer body (a proxy streaming
endlessly) fails the request with a transient `InvalidResponseError` instead of filling memory."""

DEFAULT_FIRST_CONTACT_TIMEOUT = 30.0
"""Seconds a client keeps trying a server that has never answered it (`PortableClient`'s
``first_contact_timeout``); past that a wrong URL fails instead of being ridden out as an outage."""


def honour_retry_after(delay: float, retry_after: float | None, cap: float) -> float:
    """Return ``delay`` raised to the server's ``Retry-After``, itself capped at ``cap`` seconds.

    The one home of the rule for request retries (`RetryPolicy.delay`), the client-wide 429 pause (the pacer)
    and the poll schedule (`WaitState.next_delay`): never come back sooner than the server asked, and never let
    a misconfigured server park a waiter for longer than ``cap``.
    """
    if retry_after is None:
        return delay
    return max(delay, min(retry_after, cap))


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often `wait_for_completion` asks for a workflow's status.

    The n-th delay (n = 0, 1, ...) is ``min(maximum, initial * multiplier**n)`` (tenacity's
    ``wait_exponential``), shortened at random by up to ``jitter`` of itself so that many waiters started
    together drift apart instead of polling in lock step. A delay never exceeds ``maximum`` and is always
    clipped to the wait's deadline.

    Args:
        initial: Seconds before the second poll (the first poll is immediate). Default 2.
        maximum: Longest pause between two polls, in seconds. Default 30.
        multiplier: Growth of the pause after each poll; 1 polls at a fixed interval. Default 1.5.
        jitter: Fraction (0 to 1) by which each pause may be shortened at random. Default 0.2.
        outage_tolerance: Seconds of consecutive failed polls (each already retried by the client) that a wait
            rides out before it raises the last error. 0 raises on the first failed poll. Default 600.

    The defaults (2 s growing by 1.5x to 30 s) cost about 15 requests for a 5-minute run and learn of its end
    within 30 s at worst; see ``docs/performance.md`` for how they compare with fixed intervals.
    """

    initial: float = 2.0
    maximum: float = 30.0
    multiplier: float = 1.5
    jitter: float = 0.2
    outage_tolerance: float = 600.0

    def __post_init__(self) -> None:
        check_seconds(self.initial, "PollPolicy.initial")
        check_seconds(self.maximum, "PollPolicy.maximum")
        check_seconds(self.outage_tolerance, "PollPolicy.outage_tolerance", allow_zero=True)
        if self.maximum < self.initial:
            raise ValueError(f"PollPolicy.maximum ({self.maximum}) must be >= PollPolicy.initial ({self.initial})")
        multiplier = check_number(self.multiplier, "PollPolicy.multiplier")
        if not (1 <= multiplier < float("inf")):
            raise ValueError(f"PollPolicy.multiplier must be a finite number >= 1, got {self.multiplier!r}")
        jitter = check_number(self.jitter, "PollPolicy.jitter", what="a number between 0 and 1")
        if not 0 <= jitter <= 1:
            raise ValueError(f"PollPolicy.jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, poll_index: int, rand: float | None = None) -> float:
        """Return the pause in seconds after poll number ``poll_index`` (0-based), before deadline clipping."""
        base = exponential_backoff(self.initial, self.multiplier, self.maximum, poll_index)
        r = random.random() if rand is None else rand
        return base * (1.0 - self.jitter * r)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How `PortableClient` retries one request that failed for a transient reason.

    Transient: HTTP 408, 429 and 5xx, connection errors, request timeouts, and bodies that are not JSON or were
    cut short. The wait before retry n (n = 1, 2, ...) is drawn uniformly from
    ``[0, min(maximum, initial * 2**(n-1))]`` ("full jitter"); a ``Retry-After`` header raises it to at least the
    server's value, clipped to ``retry_after_cap`` so that a misconfigured server cannot park a waiter for hours.

    Args:
        attempts: Tries in all, the first included; 1 disables retries. Default 4.
        initial: Upper bound of the first backoff, in seconds. Default 0.5.
        maximum: Upper bound of any backoff, in seconds. Default 10.
        retry_after_cap: Longest ``Retry-After`` honoured, in seconds. Default 120.
    """

    attempts: int = 4
    initial: float = 0.5
    maximum: float = 10.0
    retry_after_cap: float = 120.0

    def __post_init__(self) -> None:
        check_int(self.attempts, "RetryPolicy.attempts (1 means no retry)", minimum=1)
        check_seconds(self.initial, "RetryPolicy.initial", allow_zero=True)
        check_seconds(self.maximum, "RetryPolicy.maximum", allow_zero=True)
        check_seconds(self.retry_after_cap, "RetryPolicy.retry_after_cap", allow_zero=True)
        if self.maximum < self.initial:
            raise ValueError(f"RetryPolicy.maximum ({self.maximum}) must be >= RetryPolicy.initial ({self.initial})")

    def delay(self, retry_number: int, retry_after: float | None = None, rand: float | None = None) -> float:
        """Return the pause in seconds before retry ``retry_number`` (1-based)."""
        ceiling = exponential_backoff(self.initial, 2.0, self.maximum, retry_number - 1)
        r = random.random() if rand is None else rand
        return honour_retry_after(ceiling * r, retry_after, self.retry_after_cap)


DEFAULT_RETRY = RetryPolicy()
"""`PortableClient`'s request retry policy when none is given."""

DEFAULT_POLL = PollPolicy()
"""The poll schedule of a wait when none is given."""
