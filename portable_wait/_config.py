"""Policies: how often to poll and how to retry a failed request.

Both are frozen dataclasses validated in ``__post_init__``, so a bad value fails where it is written, not an hour
into a wait. All durations are float seconds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["PollPolicy", "RetryPolicy"]


def _check_seconds(owner: str, name: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}.{name} must be a finite number of seconds {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often `wait_for_completion` asks for a workflow's status.

    The n-th delay (n = 0, 1, ...) is ``min(maximum, initial * multiplier**n)``, shortened at random by up to
    ``jitter`` of itself so that many waiters started together drift apart instead of polling in lock step.
    A delay never exceeds ``maximum`` and is always clipped to the wait's deadline.

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
        _check_seconds("PollPolicy", "initial", self.initial)
        _check_seconds("PollPolicy", "maximum", self.maximum)
        _check_seconds("PollPolicy", "outage_tolerance", self.outage_tolerance, allow_zero=True)
        if self.maximum < self.initial:
            raise ValueError(f"PollPolicy.maximum ({self.maximum}) must be >= PollPolicy.initial ({self.initial})")
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, (int, float)):
            raise TypeError(f"PollPolicy.multiplier must be a number, got {type(self.multiplier).__name__}")
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            raise ValueError(f"PollPolicy.multiplier must be a finite number >= 1, got {self.multiplier!r}")
        _check_fraction("PollPolicy", "jitter", self.jitter)

    def delay(self, poll_index: int, rand: float | None = None) -> float:
        """Return the pause in seconds after poll number ``poll_index`` (0-based), before deadline clipping."""
        base = _grow(self.initial, self.multiplier, self.maximum, poll_index)
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
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"RetryPolicy.attempts must be an int, got {type(self.attempts).__name__}")
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1 (1 means no retry), got {self.attempts}")
        _check_seconds("RetryPolicy", "initial", self.initial, allow_zero=True)
        _check_seconds("RetryPolicy", "maximum", self.maximum, allow_zero=True)
        _check_seconds("RetryPolicy", "retry_after_cap", self.retry_after_cap, allow_zero=True)
        if self.maximum < self.initial:
            raise ValueError(f"RetryPolicy.maximum ({self.maximum}) must be >= RetryPolicy.initial ({self.initial})")

    def delay(self, retry_number: int, retry_after: float | None = None, rand: float | None = None) -> float:
        """Return the pause in seconds before retry ``retry_number`` (1-based)."""
        ceiling = _grow(self.initial, 2.0, self.maximum, retry_number - 1)
        r = random.random() if rand is None else rand
        pause = ceiling * r
        if retry_after is not None:
            pause = max(pause, min(retry_after, self.retry_after_cap))
        return pause


def _check_fraction(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a number between 0 and 1, got {type(value).__name__}")
    if not 0 <= value <= 1:
        raise ValueError(f"{owner}.{name} must be between 0 and 1, got {value!r}")


def _grow(initial: float, multiplier: float, maximum: float, n: int) -> float:
    # Work in logarithms: multiplier**n overflows a float after a few hundred polls.
    if multiplier == 1 or n <= 0:
        return min(initial, maximum)
    if initial == 0:
        return 0.0
    log_delay = math.log(initial) + n * math.log(multiplier)
    if log_delay >= math.log(maximum):
        return maximum
    try:
        return min(maximum, initial * multiplier**n)
    except OverflowError:  # a subnormal initial with a huge n: exact is out of reach, the logarithm is not
        return min(maximum, math.exp(log_delay))
