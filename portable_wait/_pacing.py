"""Client-wide request pacing: an optional fixed rate, a client-wide pause on 429, and a learned rate.

One `Pacer` per `PortableClient`, shared by every waiter and every retry. Three things decide when the next
request may leave:

* ``rate_limit`` (fixed, optional, the user's): requests are spaced at least ``SPACING_MARGIN / rate_limit``
  seconds apart, and no window of ``WINDOW`` (1.02 s) holds more than ``floor(rate_limit)`` of them, measured
  on the times they actually left (a busy event loop can oversleep). Spacing, rather than a bucket that allows a
  burst, means polls that fall due together leave one after another, and the 2% margin keeps network jitter
  from squeezing an extra one into a server's second. Slots follow each other from the slot, not from the
  moment a request left, so an event loop that wakes late does not slow the pace (``CATCH_UP``).
* a pause: every 429 stops *every* request of the client until its ``Retry-After``, at most the client's
  ``RetryPolicy.retry_after_cap``. ``Retry-After: 0`` is still a 429 (counted, fed to the estimator) but pauses
  nothing. When the server gave no ``Retry-After`` the pause is ours to choose, and it follows how often 429s
  come: none for a stray (``loss`` at or under ``STRAY_LOSS``), growing to ``DEFAULT_429_PAUSE`` (1 s) for a
  cluster (``loss`` at ``CLUSTER_LOSS``); the request that drew it still backs off per its `RetryPolicy`.
  Without the pause, each of a thousand waiters would discover the rate limit on its own.
* a learned rate: what the server can take, estimated from what it *accepts*. The rest of this docstring.

The learned rate
----------------
Three things go wrong with a plain AIMD that halves on every 429 (the first version of this module): stray 429s
(a gateway node restarting, a burst elsewhere on the account) halve it as surely as a real limit does, so 1% of
stray 429s settle it near one 429 per recovery period; a rate read from a one-second bucket that has just begun
is a fraction of the true one; and recovery by wall time alone ignores the evidence, thousands of successes. We
take from four known designs, and depart from each where a polling client with server-driven pauses differs:

* **BBR's bandwidth estimate.** The server's capacity is what it *accepted* over the last second (``S``, the
  count of successful answers in the last ``SAMPLE_WINDOW`` seconds, the length of a typical gateway's sliding
  window), not what we sent. When a 429 comes while ``S`` is clearly below the rate we allowed ourselves, the
  server has shown its capacity: the rate is set to ``S`` itself (no deeper cut: ``SPACING_MARGIN`` already
  keeps us 2% under it), and ``S`` is remembered as the capacity ``C``. A window that overlaps a pause we chose
  ourselves (a 429 without ``Retry-After``) is not a sample: the server did not make us idle, so a low count
  says nothing about it. Nor is a window older than the client: rates are never read from part of a window.
* **The SRE book's accept ratio.** Before any rate is learned, a 429 is read against the answers of the last
  second: if that second holds at least ``MIN_REFUSED`` (3) 429s and fewer than ``1 - CAPACITY_TOLERANCE`` of
  its answers were accepted, the 429s are a limit, not noise, and ``S`` is its size. So is a 429 within a
  second of the end of a pause the *server* asked for: a limiter that said "wait" and refuses us again at once
  has shown its window (each of its refusals pauses us, so it never shows a low accept ratio). Neither rule
  reads a client's first second: clients that start together on one limit would each keep the part of the
  first window it happened to win (one of three learned 51 of 60 req/s, the others 16 and 18, in the
  simulation of ``python -m benchmarks pacing-sim``); a second later, after the server's pause, S is read
  from a whole window.
* **TCP, with BBRv2's loss threshold.** Strays are told from a limit by how often they come, in proportion:
  ``loss`` is an exponentially weighted share of 429s among answers (weight ``LOSS_WEIGHT`` per answer, about the
  last 64). Below ``STRAY_LOSS`` (5%: above 2% of strays by 2.4 standard deviations of the estimate) a 429
  cuts nothing; from there the cut grows linearly to ``MAX_CUT`` (30%, botocore's
  ``beta = 0.7``) at ``CLUSTER_LOSS`` (30%). A lone 429 among thousands of successes moves nothing; a burst of
  them cuts decisively. As in TCP, the rate is cut at most once per round: a 429 for a request sent before the
  last cut belongs to the episode already answered (the first version keyed this to the pause, which
  ``Retry-After: 0`` makes empty, so every 429 halved again).
* **CUBIC, counted in successes.** After a cut the rate climbs back to the reference ``W`` (the capacity, or the
  rate before a proportional cut) along a concave curve, holds there, and only then probes above it along a
  convex one: ``W + max(W, PROBE_FLOOR) * PROBE_GAIN * (tau - hold) ** 3``. Unlike botocore's, CUBIC's clock
  ``tau`` is *successes since the cut divided by W*: seconds of traffic at capacity, so a busy client earns its
  recovery with accepted requests, as fast as they come; wall time since the cut is its floor, so a client
  refused most of a shared limit (three processes, one limit) still comes back to claim its share, and the
  ``PROBE_FLOOR`` (10 req/s) keeps a client learned at a tiny rate from probing in tiny steps.
  ``hold`` is ``HOLD_FIRST`` (14 s) after the first capacity learned, ``HOLD_MIN`` (8 s) after a capacity that
  moved, and grows by ``HOLD_GROWTH`` up to ``HOLD_MAX`` (20 s) each time a probe finds the same capacity.
  Every probe of a server that enforces ``Retry-After: 1`` costs a second of silence, so against a stable
  limit we probe rarely (about 5% lost to probing at 20 s); after a limit has moved, it is likely to move
  again (an account-wide burst ends), so we probe soon. ``PROBE_GAIN`` (0.06) takes the rate 2% over ``W`` (past the
  spacing margin) in about 0.7 s of traffic and to 3.2 times ``W`` in 3.3 s, so a limit that returns from 25 to 100
  req/s is found within ``hold`` + 4 s.
* A 429 that comes while we are above the capacity we learned (or pace at a rate of our own guess, before any
  capacity) is a probe that found it: the rate and the capacity become ``S``. A 429 at or under the capacity
  is a stray, or the limit moved: it cuts only in proportion to ``loss`` (or to the server's pauses, next),
  and if the limit moved, the next second's ``S`` shows it.

* **What the server's pauses cost.** A 429 with ``Retry-After: 1`` silences the whole client for a second, so
  a client refused once every other second spends half its time silent, while its share of 429s among answers
  (about 3%) reads as strays'. Three clients on one limit end up so: one is refused after every pause, and the
  others take its window. So a client with a learned rate also keeps the seconds of pause the server asked for
  in the last ``PAUSE_WINDOW`` (5 s) since its last cut; when they pass ``PAUSE_SHARE`` (20%) of it, a 429
  cuts the rate by half that share (at most ``MAX_CUT``), once per round, with no climb back to the old
  reference: the time a client spends paused is the congestion signal a shared limit gives. With the
  first-second rule above and the forget margin below, this took the shared-limit scenario of
  ``python -m benchmarks pacing-sim`` from 12 seeds of 16 missing a target to 2 (5 of 32), and changed neither
  single-client scenario.

A learned rate that has grown to ``FORGET_FACTOR`` (2) times its reference, and by at least ``FORGET_MARGIN``
(50 req/s), without another 429 is dropped, and the client is unpaced again. The margin is for shared limits:
a client probing from 20 req/s while the others sit out a pause doubles in about 3 s unrefused, and, unpaced,
it would take the whole window (seen in the three-process benchmark: 58 of 60 req/s, the others 1 each).
``MIN_RATE`` (0.2 req/s) is the floor. The fixed ``rate_limit`` caps the learned one, and is never exceeded.

When neither a fixed rate, a pause nor a learned rate applies, ``engaged`` is False and the client skips
`acquire`, calling `count_send` instead.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable

from ._config import honour_retry_after
from ._validate import check_number

__all__ = ["Pacer"]

SPACING_MARGIN = 1.02
"""Requests are spaced 2% wider than the rate needs, so network jitter cannot squeeze one more into a second."""

WINDOW = 1.0 * SPACING_MARGIN
"""With a rate set, no more than ``floor(rate)`` requests are sent in any window this long (seconds)."""

CATCH_UP = 0.95
"""A request that left late lets the next one leave early by up to 5% of the spacing."""

DEFAULT_429_PAUSE = 1.0
"""Pause after a 429 that carried no Retry-After, in seconds, once 429s come as a cluster (see `_loss_share`)."""

MIN_RATE = 0.2
"""Slowest the learned rate goes, in requests per second."""

SAMPLE_WINDOW = 1.0
"""Seconds over which accepted answers are counted as a capacity sample: a typical gateway's window."""

CAPACITY_TOLERANCE = 0.15
"""A sample this far (15%) under the rate we allowed is a capacity; closer is measurement noise."""

MIN_REFUSED = 3
"""The accept ratio is read only from a second that holds at least this many 429s."""

LOSS_WEIGHT = 1 / 64
"""Weight of each answer in the running share of 429s: it remembers about the last 64 answers."""

STRAY_LOSS = 0.05
"""A share of 429s up to 5% is read as strays: no cut."""

CLUSTER_LOSS = 0.30
"""A share of 429s from 30% up is a cluster: the full cut."""

MAX_CUT = 0.30
"""The deepest proportional cut, as botocore's beta = 0.7."""

PROBE_GAIN = 0.06
"""CUBIC's constant: rate = W + max(W, PROBE_FLOOR) * PROBE_GAIN * (tau - hold) ** 3, tau in seconds at W."""

PROBE_FLOOR = 10.0
"""Requests per second: a probe from a small rate grows at least as fast as one from 10 req/s."""

HOLD_MIN = 8.0
"""Seconds of traffic at capacity before the first probe above a capacity that just moved."""

HOLD_FIRST = 14.0
"""Hold after the first capacity a client learns: most limits met for the first time are an account's standing
limit, so probe it less often than one that has just moved."""

HOLD_MAX = 20.0
"""Longest hold, reached when probes keep finding the same capacity."""

HOLD_GROWTH = 1.5
"""Factor the hold grows by each time a probe finds the same capacity (within ``CAPACITY_TOLERANCE``)."""

PAUSE_WINDOW = 5.0
"""Seconds over which the pauses the server asked for are added up."""

PAUSE_SHARE = 0.2
"""Past this share of ``PAUSE_WINDOW`` spent in pauses the server asked for, a 429 cuts a learned rate."""

FORGET_MARGIN = 50.0
"""A learned rate is forgotten only once it has also grown by this many requests per second (module docstring)."""

FORGET_FACTOR = 2.0
"""A learned rate that grows to this multiple of its reference without a 429 is dropped."""


def _monotonic_loop_time() -> float:
    return asyncio.get_running_loop().time()


class Pacer:
    """Paces the requests of one client. See the module docstring.

    Args:
        rate_limit: A fixed limit in requests per second, never exceeded, or None.
        max_pause: Longest pause a 429 causes, in seconds (the client's ``retry_after_cap``).
        clock: Returns the time in seconds; the running event loop's clock by default. Tests inject one.
    """

    __slots__ = (
        "_acks",
        "_blind_until",
        "_born",
        "_capacity",
        "_clock",
        "_cut_at",
        "_cut_rate",
        "_fixed",
        "_hold",
        "_learned",
        "_lock",
        "_max_pause",
        "_next_slot",
        "_paused_until",
        "_pauses",
        "_reference",
        "_refusals",
        "_sent",
        "_server_pause_end",
        "_successes",
        "engaged",
        "loss",
        "rate_limited",
    )

    def __init__(
        self, rate_limit: float | None, *, max_pause: float = 120.0, clock: Callable[[], float] | None = None
    ) -> None:
        if rate_limit is not None:
            check_number(rate_limit, "rate_limit", what="requests per second or None")
            if not (math.isfinite(rate_limit) and rate_limit > 0):
                raise ValueError(f"rate_limit must be a finite number of requests per second > 0, got {rate_limit!r}")
        self._fixed = None if rate_limit is None else float(rate_limit)
        self._max_pause = max_pause
        self._clock = clock or _monotonic_loop_time
        self._lock: asyncio.Lock | None = None
        self._sent: deque[float] = deque()  # sends in the last WINDOW, for the spacing rule
        self._acks: deque[float] = deque()  # successful answers in the last SAMPLE_WINDOW
        self._refusals: deque[float] = deque()  # 429 answers in the last SAMPLE_WINDOW
        self._pauses: deque[tuple[float, float]] = deque()  # (when, seconds) of pauses the server asked for
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._blind_until = -math.inf
        self._born: float | None = None
        self._server_pause_end = -math.inf
        self._learned: float | None = None
        self._capacity: float | None = None
        self._reference = 0.0
        self._cut_rate = 0.0
        self._cut_at = -math.inf
        self._successes = 0
        self._hold = HOLD_MIN
        self.engaged = self._fixed is not None
        self.rate_limited = 0
        """How many 429 answers this client has had."""
        self.loss = 0.0
        """The running share of 429s among answers (about the last 64)."""

    def __repr__(self) -> str:
        rate = self.current_rate()
        shown = "unlimited" if rate is None else f"{rate:.3g}/s"
        return f"pace={shown} rate_limited={self.rate_limited}"

    @property
    def capacity(self) -> float | None:
        """The server capacity learned from accepted answers, requests per second, or None if none yet."""
        return self._capacity

    def current_rate(self) -> float | None:
        """Return the requests per second now allowed, or None when unlimited."""
        fixed, learned = self._fixed, self._learned
        if learned is None:
            return fixed
        return learned if fixed is None else min(fixed, learned)

    def delay(self, now: float) -> float:
        """Return how long, in seconds from ``now``, the next request must wait (0 or less: send now)."""
        wait = self._paused_until - now
        rate = self.current_rate()
        if rate is not None:
            wait = max(wait, self._next_slot - now)
            sent = self._sent
            while sent and now - sent[0] >= WINDOW:
                sent.popleft()
            if len(sent) >= max(1, math.floor(rate)):
                wait = max(wait, WINDOW - (now - sent[0]))  # the same expression as above: no rounding gap
        return wait

    async def acquire(self) -> float:
        """Wait until the next request may be sent, record it as sent, and return the time it left."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        # One acquirer at a time, first come first served. It re-reads the clock after every sleep, so an
        # oversleeping event loop, a 429 that arrives meanwhile, or a change of rate is never missed.
        async with self._lock:
            while True:
                now = self._clock()
                wait = self.delay(now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self._fixed is None and self._learned is None:
                self.engaged = False  # the pause is over and nothing else paces us
            return self.count_send(now)

    def count_send(self, now: float) -> float:
        """Count a request sent at ``now`` (the pacer's clock) and return ``now``.

        Unpaced (no fixed or learned rate), this only notes the client's first send: the estimator reads
        rates from answers, so a client that sends thousands of requests a second pays nothing per send.
        """
        rate = self.current_rate()
        if rate is not None:
            # Spaced from the slot this request had, not from when it left: an event loop that wakes a
            # millisecond late on every 20 ms gap would otherwise run 5% slow. Catch-up is bounded (a gap is
            # never under 95% of the spacing), and the window rule below still holds every second.
            spacing = SPACING_MARGIN / rate
            self._next_slot = max(self._next_slot + spacing, now + CATCH_UP * spacing)
            self._sent.append(now)
        if self._born is None:
            self._born = now
        return now

    def on_rate_limited(self, retry_after: float | None, *, sent_at: float | None = None) -> None:
        """Record a 429: pause every request until its Retry-After, and learn from it.

        Args:
            retry_after: The answer's ``Retry-After`` in seconds, or None when it had none.
            sent_at: When the request left (what `acquire` or `count_send` returned); None for now.
        """
        now = self._clock()
        resumed = min(self._paused_until, now)  # when sending last resumed after a pause
        self.rate_limited += 1
        self.loss += (1.0 - self.loss) * LOSS_WEIGHT
        _push(self._refusals, now)
        # A header-less 429 asks for no pause: the client-wide pause is ours to choose, so it grows with how
        # often 429s come, from none for a stray (a lone 429 among successes) to DEFAULT_429_PAUSE for a
        # cluster. A stray otherwise stops every waiter for a second: at 1% of answers that halves a fan-out.
        default = DEFAULT_429_PAUSE * self._loss_share()
        pause = honour_retry_after(0.0, default if retry_after is None else retry_after, self._max_pause)
        if pause > 0:
            self._paused_until = max(self._paused_until, now + pause)
        if retry_after is None and pause > 0:
            # Our own pause, not the server's: the coming second's count of accepted answers is no sample.
            self._blind_until = max(self._blind_until, now + pause + SAMPLE_WINDOW)
        self.engaged = True
        if (now if sent_at is None else sent_at) < self._cut_at:
            if retry_after is not None and retry_after > 0:
                self._server_pause_end = max(self._server_pause_end, now + pause)
            return  # sent before the last cut: part of the episode already answered
        if retry_after is not None and retry_after > 0:
            self._pauses.append((now, pause))
        self._learn(now, resumed)
        if retry_after is not None and retry_after > 0:
            self._server_pause_end = max(self._server_pause_end, now + pause)
        if self._learned is None and self._fixed is None and self._paused_until <= now:
            self.engaged = False

    def _learn(self, now: float, resumed: float) -> None:
        accepted = float(_count(self._acks, now))
        refused = _count(self._refusals, now)
        answered = int(accepted) + refused
        # A window younger than a second, or overlapping a pause of our own choosing, is no capacity sample.
        age = now - (now if self._born is None else self._born)
        sampled = now >= self._blind_until and age >= SAMPLE_WINDOW
        learned = self._learned
        if learned is None:
            # Only from a whole second (`sampled`): in a client's first second, S is the part of the window it
            # happened to win, and clients that start together on one limit would each keep what they got.
            if sampled and (
                (refused >= MIN_REFUSED and accepted < (1.0 - CAPACITY_TOLERANCE) * answered)
                or 0 <= now - self._server_pause_end < SAMPLE_WINDOW
            ):
                # The accept ratio of the last second says limit, not noise; or the server, having asked for
                # a pause, refused us again within a second of it: both are a limit, and S is its size.
                self._set_capacity(accepted, now)
                return
            cut = self._proportional_cut()
            if cut > 0:
                # The rate we were sending at: a sliding window, scaled when the client is younger than it
                # or was paused for part of it.
                covered = min(SAMPLE_WINDOW, age, now - resumed)
                if covered < 0.1:
                    return  # too short a stretch of sending to tell a rate
                # Answers, not sends: they come at the rate requests left, one round trip later.
                since = now - covered
                answers = sum(1 for t in self._acks if t >= since) + sum(1 for t in self._refusals if t >= since)
                sending = answers / covered
                self._cut(sending, sending * (1.0 - cut), now)
            return
        if sampled and accepted < (1.0 - CAPACITY_TOLERANCE) * learned:
            self._set_capacity(accepted, now)  # the server takes clearly less than we allow
            return
        capacity = self._capacity
        if sampled and (capacity is None or learned > capacity):
            # Refused while above what the server last showed it takes (or before it showed anything, while
            # we were pacing at a rate of our own guess): the accepted count is the capacity, but never more
            # than we allowed ourselves: while other clients of a shared limit sit out a pause, a prober is
            # accepted more than its share, and must not keep it as its own.
            self._set_capacity(min(accepted, learned), now)
            return
        paused = self._paused_share(now)
        if paused > PAUSE_SHARE:
            # Held silent by the server much of the time: over our share of a limit (see the docstring).
            rate = learned * (1.0 - min(MAX_CUT, paused / 2))
            self._cut(rate, rate, now)
            return
        cut = self._proportional_cut()
        if cut > 0:
            self._cut(learned, learned * (1.0 - cut), now)

    def _paused_share(self, now: float) -> float:
        """Return the seconds of pause the server asked for in the last ``PAUSE_WINDOW``, as a share of it."""
        pauses = self._pauses
        while pauses and now - pauses[0][0] >= PAUSE_WINDOW:
            pauses.popleft()
        return sum(seconds for _, seconds in pauses) / PAUSE_WINDOW

    def _loss_share(self) -> float:
        """Return where ``loss`` stands between stray (0: ``STRAY_LOSS`` or less) and cluster (1: ``CLUSTER_LOSS``)."""
        return min(1.0, max(0.0, (self.loss - STRAY_LOSS) / (CLUSTER_LOSS - STRAY_LOSS)))

    def _proportional_cut(self) -> float:
        return MAX_CUT * self._loss_share()

    def _set_capacity(self, accepted: float, now: float) -> None:
        capacity = max(MIN_RATE, accepted)
        previous = self._capacity
        if previous is None:
            self._hold = HOLD_FIRST
        elif abs(capacity - previous) <= CAPACITY_TOLERANCE * previous:
            self._hold = min(HOLD_MAX, self._hold * HOLD_GROWTH)
        else:
            self._hold = HOLD_MIN
        self._capacity = capacity
        self._cut(capacity, capacity, now)

    def _cut(self, reference: float, rate: float, now: float) -> None:
        if self._fixed is not None:
            reference, rate = min(reference, self._fixed), min(rate, self._fixed)
        self._reference = max(MIN_RATE, reference)
        self._cut_rate = max(MIN_RATE, min(rate, self._reference))
        self._learned = self._cut_rate
        self._successes = 0
        self._cut_at = now
        self._pauses.clear()  # the pauses so far are this episode's, answered by this cut
        self.engaged = True

    def on_success(self, now: float | None = None) -> None:
        """Record a successful answer: it is a sample of capacity, and it earns the learned rate back.

        Args:
            now: The pacer's clock when the answer came (the client passes the loop time it already read);
                None to read it here.
        """
        if now is None:
            now = self._clock()
        loss = self.loss
        if loss:
            # Decays to exactly 0 (below one part in a million) so that the common case skips this.
            self.loss = loss - loss * LOSS_WEIGHT if loss > 1e-6 else 0.0
        acks = self._acks
        acks.append(now)  # _push, inlined: this runs for every answer
        if now - acks[0] >= SAMPLE_WINDOW:
            _count(acks, now)
        if self._learned is None:
            return
        self._successes += 1
        reference = self._reference
        # Seconds of traffic at the reference rate, and never slower than the wall clock: a client that is
        # refused most of its share (three clients on one limit) still earns its way back.
        tau = max(self._successes / reference, now - self._cut_at)
        hold = self._hold
        if tau < hold:
            rate = reference - (reference - self._cut_rate) * (1.0 - tau / hold) ** 3
        else:
            rate = reference + max(reference, PROBE_FLOOR) * PROBE_GAIN * (tau - hold) ** 3
        if rate >= FORGET_FACTOR * reference and rate >= reference + FORGET_MARGIN:
            self._learned = self._capacity = None
            self._hold = HOLD_MIN
            self.engaged = self._fixed is not None or self._paused_until > now
            return
        self._learned = rate


def _push(times: deque[float], now: float) -> None:
    times.append(now)
    while now - times[0] >= SAMPLE_WINDOW:
        times.popleft()


def _count(times: deque[float], now: float) -> int:
    while times and now - times[0] >= SAMPLE_WINDOW:
        times.popleft()
    return len(times)
