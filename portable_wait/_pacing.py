"""Client-wide request pacing: an optional fixed rate, and backing off together when Portable says 429.

One `Pacer` per `PortableClient`, shared by every waiter and every retry. It has three pieces of state:

* ``rate_limit`` (fixed, optional): requests are spaced at least ``1 / rate_limit`` seconds apart, and no window
  of 1.02 s holds more than ``rate_limit`` of them, measured on the times they actually left (a busy event loop
  can oversleep). Spacing, rather than a bucket that allows a burst, means polls that fall due together leave
  one after another, and the 2% margin keeps network jitter from squeezing an extra one into a server's second.
* a pause: a 429 stops *every* request of the client until its ``Retry-After`` (or a short backoff when the
  server gave none), at most the client's ``RetryPolicy.retry_after_cap``. Without it, each of a thousand
  waiters would discover the rate limit on its own.
* an adaptive rate (AIMD): a 429 also halves the rate the client allows itself, starting from the rate it was
  sending at; each later success raises it again linearly, over ``RECOVERY`` seconds back to the rate that drew
  the 429, and the adaptive limit is dropped once it has doubled past it without another 429. So a fan-out
  against a rate-limited API draws a 429 now and then instead of hundreds.

When neither a fixed rate nor a recent 429 applies, ``engaged`` is False and the client skips the pacer.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from ._config import honour_retry_after
from ._validate import check_number

__all__ = ["Pacer"]

RECOVERY = 30.0
"""Seconds the adaptive rate takes to climb back from half to the rate that drew a 429."""

DEFAULT_429_PAUSE = 1.0
"""Pause after a 429 that carried no Retry-After, in seconds."""

MIN_RATE = 0.2
"""Slowest the adaptive rate goes, in requests per second."""

SPACING_MARGIN = 1.02
"""Requests are spaced 2% wider than the rate needs, so network jitter cannot squeeze one more into a second."""

WINDOW = 1.0 * SPACING_MARGIN
"""With a rate set, no more than ``floor(rate)`` requests are sent in any window this long (seconds)."""

SPACING_MARGIN = 1.02
"""Requests are spaced 2% wider than the rate needs, so network jitter cannot squeeze one more into a second."""

WINDOW = 1.0 * SPACING_MARGIN
"""With a rate set, no more than ``floor(rate)`` requests are sent in any window this long (seconds)."""


class Pacer:
    """Paces the requests of one client. See the module docstring."""

    __slots__ = (
        "_adaptive",
        "_ceiling",
        "_fixed",
        "_last_update",
        "_lock",
        "_max_pause",
        "_next_slot",
        "_paused_until",
        "_prev_count",
        "_recovery",
        "_sent",
        "_window_count",
        "_window_start",
        "engaged",
        "rate_limited",
    )

    def __init__(self, rate_limit: float | None, *, max_pause: float = 120.0, recovery: float = RECOVERY) -> None:
        if rate_limit is not None:
            check_number(rate_limit, "rate_limit", what="requests per second or None")
            if not (math.isfinite(rate_limit) and rate_limit > 0):
                raise ValueError(f"rate_limit must be a finite number of requests per second > 0, got {rate_limit!r}")
        self._fixed = None if rate_limit is None else float(rate_limit)
        self._recovery = recovery
        self._max_pause = max_pause
        self._lock = asyncio.Lock()
        self._sent: deque[float] = deque()
        self._adaptive: float | None = None
        self._ceiling = 0.0
        self._last_update = 0.0
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._window_start = 0.0
        self._window_count = 0
        self._prev_count = 0
        self.engaged = self._fixed is not None
        self.rate_limited = 0
        """How many 429 answers this client has had."""

    def __repr__(self) -> str:
        rate = self.current_rate()
        shown = "unlimited" if rate is None else f"{rate:.3g}/s"
        return f"pace={shown} rate_limited={self.rate_limited}"

    def current_rate(self) -> float | None:
        """Return the requests per second now allowed, or None when unlimited."""
        rates = [r for r in (self._fixed, self._adaptive) if r is not None]
        return min(rates) if rates else None

    async def acquire(self) -> None:
        """Wait until the next request may be sent, and record it as sent."""
        loop = asyncio.get_running_loop()
        # One acquirer at a time, first come first served. It re-reads the clock after every sleep, so an
        # oversleeping event loop, a 429 that arrives meanwhile, or a change of rate is never missed.
        async with self._lock:
            while True:
                now = loop.time()
                rate = self.current_rate()
                wait = self._paused_until - now
                if rate is not None:
                    wait = max(wait, self._next_slot - now)
                    sent = self._sent
                    while sent and now - sent[0] >= WINDOW:
                        sent.popleft()
                    if len(sent) >= max(1, math.floor(rate)):
                        wait = max(wait, sent[0] + WINDOW - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if rate is not None:
                self._next_slot = now + SPACING_MARGIN / rate
                self._sent.append(now)
            self.count_send(now)

    def count_send(self, now: float) -> None:
        """Count a request sent at loop time ``now``; a 429 needs to know how fast we were sending."""
        if now - self._window_start >= 1.0:
            self._prev_count = self._window_count if now - self._window_start < 2.0 else 0
            self._window_start = now
            self._window_count = 0
        self._window_count += 1

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Record a 429: pause every request, and halve the allowed rate."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.rate_limited += 1
        pause = honour_retry_after(0.0, DEFAULT_429_PAUSE if retry_after is None else retry_after, self._max_pause)
        self._paused_until = max(self._paused_until, now + pause)
        if self._adaptive is not None and now < self._last_update:
            # Several requests in flight answer 429 for the same overload: halve once per episode.
            self.engaged = True
            return
        # The current window may be partial, so its count is a lower bound; the previous one is whole.
        sending = float(max(self._prev_count, self._window_count))
        base = self._adaptive if self._adaptive is not None else sending
        self._ceiling = max(MIN_RATE, base)
        self._adaptive = max(MIN_RATE, base / 2)
        if self._fixed is not None:
            self._adaptive = min(self._adaptive, self._fixed)
        self._last_update = self._paused_until
        self.engaged = True

    def on_success(self) -> None:
        """Record a successful request: let the adaptive rate recover, slowly."""
        if self._adaptive is None:
            return
        now = asyncio.get_running_loop().time()
        if now <= self._last_update:
            return
        step = self._ceiling / 2 / self._recovery * (now - self._last_update)
        self._last_update = now
        self._adaptive += step
        if self._adaptive >= 2 * self._ceiling:
            self._adaptive = None
            self.engaged = self._fixed is not None
