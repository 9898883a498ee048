"""Portable's clock as seen from here, and the ``after=`` rule that compares on it. Pure: no I/O, no loop.

``after`` is read from the user's clock; ``completedAt`` is stamped by Portable's. A few seconds of skew either
way turns the rule wrong: a clock running ahead makes a fresh run look older than ``after`` (the wait never
ends), one running behind lets the previous run's result pass. So every answer's ``Date`` header is a sample of
Portable's clock, and the rule compares on Portable's clock.

**The estimator** (`ServerClock`). Let ``theta`` be the offset, Portable's time minus local time. A request sent
at local time ``sent`` and answered at ``received`` was stamped by the server at some local instant in
``[sent, received]``, and ``Date`` holds that instant's server time truncated to the second, ``D``. So

    D - received  <=  theta  <  D + 1 - sent

Each answer gives an interval of width ``1 + round trip``, which holds ``theta`` whatever the latency and the
truncation, with no assumption about either. Answers stamped in different phases of the second cut it down:
their intersection narrows as they accumulate (a poll received just after the server's second ticked pins the
lower end; one sent just before it ticks pins the upper end). Answers carrying the same ``Date`` as the one
before are merged into one sample (their intersection), with no parsing: a fan-out of thousands of polls a
second costs two ``time.time()`` calls and a string comparison per answer. The last 32 distinct samples are
kept.

A wild ``Date`` (a cached answer replayed by a proxy, a gateway node with a broken clock) gives an interval that
misses the others. The estimate is therefore the region covered by the *most* samples (Marzullo's algorithm,
as NTP uses it), not the intersection of all: one wild sample among honest ones is outvoted. Ties go to the
region holding the newest sample, the best evidence after a clock step. The estimate is that region's
midpoint, ``offset``, and its half-width, ``error``: the true offset is within ``offset +- error`` whenever the
samples in the region are honest. One answer gives ``error`` of about 0.5 s; a few dozen polls at random
phases bring it to a few tens of milliseconds.

**The rule** (`completed_after`). A ``NOT_RUNNING`` result counts as the run we wait for when ``completed_at``,
on Portable's clock, is at least ``after + offset - margin``. ``margin`` is ``BASE_MARGIN`` (0.5 s) plus the
estimate's ``error``, capped at ``MAX_MARGIN`` (5 s): ``BASE_MARGIN`` covers what the ``Date`` samples cannot
see, mainly that ``completedAt`` is stamped by a different machine of Portable's than the one answering, each
on NTP. The margin errs on the side of ending the wait: a run that completed at or after ``after`` is never
refused, while a result that completed more than ``BASE_MARGIN + 2 * error`` (at most about 1.5 s, usually
about 0.6 s) before ``after`` is always refused. A previous run that ended within that sliver before your
trigger is the one case left ambiguous, and the wait's own sight of the run PENDING or RUNNING settles it
whenever it sees the run going.

No ``Date`` header at all (a proxy that strips it): the offset is taken as 0 with ``BASE_MARGIN``, the clocks
are then trusted to agree.

**Answers that lie.** An answer with an ``Age`` header was served from an HTTP cache (RFC 9111), which keeps the
stored response's original ``Date``: it says nothing about Portable's clock now and is not a sample. And an
offset beyond ``MAX_PLAUSIBLE_OFFSET`` (5 minutes; NTP keeps real servers within a second) is applied only when
answers stamped in at least ``OFFSET_QUORUM`` (3) different seconds agree on it. A cached or replayed answer
repeats its ``Date`` however often it is served, so it counts once; three distinct stamps that keep the same
offset are a server whose clock really is that far off, which ``after`` must then follow. Until then the
estimate is made from the plausible samples alone (none: offset 0, as with no ``Date``), and a warning is
logged once per client.
"""

from __future__ import annotations

import email.utils
import logging
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "BASE_MARGIN",
    "MAX_MARGIN",
    "MAX_PLAUSIBLE_OFFSET",
    "OFFSET_QUORUM",
    "ClockOffset",
    "ServerClock",
    "completed_after",
]

logger = logging.getLogger("portable_wait")

BASE_MARGIN = 0.5
"""Seconds of margin below ``after`` for what the clock estimate cannot see (see the module docstring)."""

MAX_MARGIN = 5.0
"""Seconds: the margin never exceeds this, however poor the estimate, so an older result is refused."""

MAX_PLAUSIBLE_OFFSET = 300.0
"""Seconds: an offset larger than this is applied only when ``OFFSET_QUORUM`` distinct ``Date`` values agree."""

OFFSET_QUORUM = 3
"""Answers stamped in this many different seconds must agree on an implausible offset before it is applied."""

_SAMPLES = 32


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """An estimate of Portable's clock minus the local clock.

    Attributes:
        offset: Seconds to add to a local time to get Portable's time at the same instant.
        error: Seconds: the true offset lies within ``offset +- error`` (0 when nothing is known).
        samples: How many samples the estimate rests on; 0 means no ``Date`` header was seen and the clocks are
            assumed to agree.
    """

    offset: float
    error: float
    samples: int

    @property
    def margin(self) -> float:
        """Seconds of margin below ``after`` that the ``after`` rule allows with this estimate."""
        return min(MAX_MARGIN, BASE_MARGIN + self.error)


UNKNOWN_OFFSET = ClockOffset(0.0, 0.0, 0)


class ServerClock:
    """A running estimate of Portable's clock from the ``Date`` headers of its answers (one per client).

    Feed every HTTP answer to `observe`; read `estimate`. The estimate is recomputed only when asked for after
    a new sample, over at most 32 samples.
    """

    __slots__ = ("_cached", "_last_date", "_samples", "_warned")

    def __init__(self) -> None:
        # Each sample: [date string, D, lower bound, upper bound] of the offset, in seconds.
        self._samples: deque[list[float]] = deque(maxlen=_SAMPLES)
        self._last_date: str | None = None
        self._cached: ClockOffset | None = UNKNOWN_OFFSET
        self._warned = False

    def __repr__(self) -> str:
        estimate = self.estimate()
        return f"<ServerClock offset={estimate.offset:+.3f}s error={estimate.error:.3f}s samples={estimate.samples}>"

    def observe(self, date: str | None, sent: float, received: float, *, age: str | None = None) -> None:
        """Record one answer.

        Args:
            date: The answer's ``Date`` header, or None.
            sent: Local wall time (``time.time()``) just before the request was sent.
            received: Local wall time when the answer's headers arrived.
            age: The answer's ``Age`` header, or None. Any ``Age`` means a cache served it: not a sample.
        """
        if not date or received < sent or age is not None:
            return
        samples = self._samples
        if date == self._last_date and samples:
            last = samples[-1]
            stamp = last[0]
            low, high = max(last[1], stamp - received), min(last[2], stamp + 1.0 - sent)
            if low <= high:  # else a clock stepped, or another server: keep it as a sample of its own
                if low != last[1] or high != last[2]:
                    last[1], last[2] = low, high
                    self._cached = None
                return
        else:
            parsed = _parse_http_date(date)
            if parsed is None:
                return
            self._last_date = date
            stamp = parsed
        samples.append([stamp, stamp - received, stamp + 1.0 - sent])
        self._cached = None

    def estimate(self) -> ClockOffset:
        """Return the current estimate (`ClockOffset` with ``samples == 0`` before any ``Date`` was seen)."""
        cached = self._cached
        if cached is None:
            samples = self._samples
            low = max(s[1] for s in samples)
            high = min(s[2] for s in samples)
            if low <= high:  # the usual case, every sample agrees: their intersection, without sorting
                cached = ClockOffset((low + high) / 2, (high - low) / 2, len(samples))
            else:
                cached = _marzullo([(s[1], s[2]) for s in samples])
            if abs(cached.offset) > MAX_PLAUSIBLE_OFFSET:
                cached = self._implausible(cached)
            self._cached = cached
        return cached

    def _implausible(self, estimate: ClockOffset) -> ClockOffset:
        """Return ``estimate`` if enough distinct answers back it, else one from the plausible samples only."""
        low, high = estimate.offset - estimate.error, estimate.offset + estimate.error
        stamps = {s[0] for s in self._samples if s[1] <= low and high <= s[2]}
        if len(stamps) >= OFFSET_QUORUM:
            self._warn(
                f"Portable's clock is {estimate.offset:+.0f} s off this machine's ({len(stamps)} answers "
                "agree); `after` is compared on Portable's clock"
            )
            return estimate
        bound = MAX_PLAUSIBLE_OFFSET
        plausible = [(s[1], s[2]) for s in self._samples if s[1] <= bound and -bound <= s[2]]
        self._warn(
            f"ignoring the Date header of answers that put Portable's clock {estimate.offset:+.0f} s off "
            f"this machine's (more than {bound:g} s, from fewer than {OFFSET_QUORUM} distinct answers: a "
            "cache or a proxy replaying an old answer?)"
        )
        return _marzullo(plausible)

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(message)


def completed_after(
    completed_at: datetime, after: datetime, *, offset: float = 0.0, margin: float = BASE_MARGIN
) -> bool:
    """Return True if a run that completed at ``completed_at`` (Portable's clock) ended after ``after`` (ours).

    Args:
        completed_at: The status's ``completedAt``, timezone-aware, on Portable's clock.
        after: Timezone-aware, on the local clock.
        offset: Seconds Portable's clock is ahead of the local one (`ClockOffset.offset`).
        margin: Seconds below ``after`` still accepted (`ClockOffset.margin`).
    """
    try:
        return completed_at >= after + timedelta(seconds=offset - margin)
    except OverflowError:  # the threshold is beyond datetime's range: everything, or nothing, is after it
        return offset - margin < 0


def _parse_http_date(value: str) -> float | None:
    # parsedate_tz + mktime_tz give epoch seconds straight from the tuple, without building a datetime.
    parts = email.utils.parsedate_tz(value)
    if parts is None:
        return None
    try:
        stamp = float(email.utils.mktime_tz(parts))
    except (OverflowError, ValueError):
        return None
    return stamp if math.isfinite(stamp) else None


def _marzullo(intervals: list[tuple[float, float]]) -> ClockOffset:
    """Return the midpoint and half-width of the region covered by the most intervals (ties: the newest's)."""
    if not intervals:
        return UNKNOWN_OFFSET
    # Starts sort before ends at the same point, so intervals that only touch still count as overlapping.
    edges = sorted([(low, 0) for low, _ in intervals] + [(high, 1) for _, high in intervals])
    best: list[tuple[float, float]] = []
    best_count = count = 0
    for i, (point, kind) in enumerate(edges):
        if kind == 0:
            count += 1
            if count >= best_count:
                region = (point, edges[i + 1][0])
                if count > best_count:
                    best_count, best = count, [region]
                else:
                    best.append(region)
        else:
            count -= 1
    newest_low, newest_high = intervals[-1]
    low, high = next(
        (r for r in reversed(best) if newest_low <= r[0] and r[1] <= newest_high),
        best[-1],
    )
    return ClockOffset((low + high) / 2, (high - low) / 2, best_count)
