"""The client-wide pacer. The estimator runs on an injected clock against a simulated server (deterministic);
the spacing of real sends runs on the event loop with short intervals."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from portable_wait._pacing import DEFAULT_429_PAUSE, MIN_RATE, SPACING_MARGIN, Pacer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sim:
    """A greedy sender behind a pacer, against a server with a true sliding one-second window.

    Each request is answered the moment it leaves. ``limit`` gives the server's limit at a time (None: none);
    ``stray`` is the share of answers that are a 429 whatever the load.
    """

    limit: Callable[[float], float | None]
    demand: float = 1000.0
    stray: float = 0.0
    stray_retry_after: float | None = 0.0
    limit_retry_after: float | None = 1.0
    clock: Clock = field(default_factory=Clock)
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    records: list[tuple[float, int]] = field(default_factory=list)
    _window: deque[float] = field(default_factory=deque)

    def run(self, pacer: Pacer, seconds: float) -> None:
        t = self.clock.now
        end = t + seconds
        while t < end:
            wait = pacer.delay(t)
            if wait > 0:
                t += max(wait, 1e-6)  # a float sum can absorb a tiny wait
                continue
            self.clock.now = t
            sent = pacer.count_send(t)
            window = self._window
            while window and t - window[0] >= 1.0:
                window.popleft()
            limit = self.limit(t)
            if self.rng.random() < self.stray:
                self.records.append((t, 429))
                pacer.on_rate_limited(self.stray_retry_after, sent_at=sent)
            elif limit is not None and len(window) >= limit:
                self.records.append((t, 429))
                pacer.on_rate_limited(self.limit_retry_after, sent_at=sent)
            else:
                window.append(t)
                self.records.append((t, 200))
                pacer.on_success()
            t += 1.0 / self.demand
        self.clock.now = end

    def accepted_rate(self, start: float, end: float) -> float:
        return sum(1 for t, s in self.records if start <= t < end and s == 200) / (end - start)

    def share_429(self, start: float, end: float) -> float:
        inside = [s for t, s in self.records if start <= t < end]
        return sum(1 for s in inside if s == 429) / len(inside)


def at(*steps: tuple[float, float | None]) -> Callable[[float], float | None]:
    """A limit that changes over time: ``at((0, 100), (15, 25))`` is 100 req/s, then 25 from 15 s on."""

    def limit(t: float) -> float | None:
        current: float | None = None
        for start, value in steps:
            if t >= start:
                current = value
        return current

    return limit


def no_limit(t: float) -> float | None:
    return None


def test_pacing_idle_without_rate_limit_or_429() -> None:
    pacer = Pacer(None, clock=Clock())
    assert not pacer.engaged
    assert pacer.current_rate() is None
    assert pacer.capacity is None
    assert "unlimited" in repr(pacer)


@pytest.mark.parametrize("share", [0.005, 0.01, 0.02])
@pytest.mark.parametrize("retry_after", [0.0, None])
def test_pacing_stray_429s_barely_slow_it(share: float, retry_after: float | None) -> None:
    # 1,000 req/s of demand, no limit, a share of random 429s: the rate must stay near the demand.
    sim = Sim(no_limit, stray=share, stray_retry_after=retry_after)
    pacer = Pacer(None, clock=sim.clock)
    sim.run(pacer, 10.0)
    assert pacer.rate_limited >= 5
    rate = pacer.current_rate()
    assert rate is None or rate >= 0.9 * sim.demand, pacer
    if retry_after == 0.0:
        # Nothing pauses, so the sender kept (nearly) its whole demand.
        assert sim.accepted_rate(0, 10) >= 0.9 * (1 - share) * sim.demand


def test_pacing_lone_429_at_a_learned_capacity_moves_nothing() -> None:
    sim = Sim(at((0, 50)))
    pacer = Pacer(None, clock=sim.clock)
    sim.run(pacer, 5.0)
    before = pacer.current_rate()
    assert before is not None
    for _ in range(3):  # strays among thousands of successes, well apart
        pacer.on_rate_limited(0.0, sent_at=sim.clock.now)
        for _ in range(100):
            sim.clock.now += 0.02
            pacer.on_success()
    after = pacer.current_rate()
    assert after is not None and after >= 0.98 * before


def test_pacing_cluster_of_429s_cuts_decisively() -> None:
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    for _ in range(500):  # 500 req/s accepted for a second
        clock.now += 0.002
        pacer.count_send(clock.now)
        pacer.on_success()
    for _ in range(40):  # then every answer is a 429 (Retry-After: 0, so nothing pauses)
        clock.now += 0.002
        sent = pacer.count_send(clock.now)
        pacer.on_rate_limited(0.0, sent_at=sent)
    rate = pacer.current_rate()
    assert rate is not None and rate <= 0.75 * 500
    assert pacer.rate_limited == 40


def test_pacing_429s_of_one_round_cut_once() -> None:
    # With Retry-After: 0 there is no pause; answers to requests sent before the cut must not cut again.
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    sends = []
    for _ in range(100):
        clock.now += 0.01
        sends.append(pacer.count_send(clock.now))
        pacer.on_success()
    while pacer.current_rate() is None:  # a cluster of 429s: the first that tells a limit cuts...
        clock.now += 0.01
        pacer.on_rate_limited(0.0, sent_at=pacer.count_send(clock.now))
    first = pacer.current_rate()
    for sent in sends[-20:]:
        pacer.on_rate_limited(0.0, sent_at=sent)  # ...the ones already in flight do not
    assert pacer.current_rate() == first


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param(
            0.0,
            marks=pytest.mark.xfail(
                reason="a limiter answering Retry-After: 0 settles near 40 of 50 req/s (issue 9 targets Retry-After: 1)"
            ),
        ),
        1.0,
    ],
)
def test_pacing_learns_a_sliding_window_limit(retry_after: float) -> None:
    # Demand of 1,000 req/s against a true limit of 50 req/s: after warm-up, near the limit, rare 429s.
    sim = Sim(at((0, 50)), limit_retry_after=retry_after)
    pacer = Pacer(None, clock=sim.clock, max_pause=2.0)
    sim.run(pacer, 60.0)
    assert sim.accepted_rate(5, 60) >= 45
    assert sim.share_429(5, 60) < 0.01
    assert pacer.capacity is not None and 45 <= pacer.capacity <= 50


def test_pacing_follows_a_limit_down_and_back_up() -> None:
    sim = Sim(at((0, 100), (15, 25), (30, 100)))
    pacer = Pacer(None, clock=sim.clock)
    sim.run(pacer, 50.0)
    assert sim.share_429(15, 25) < 0.05
    back = next(t for t in range(30, 50) if sim.accepted_rate(t, t + 1) >= 80)
    assert back - 30 <= 15


def test_pacing_recovers_with_successes_not_only_time() -> None:
    def cut_pacer() -> tuple[Pacer, Clock]:
        sim = Sim(at((0, 50)))
        pacer = Pacer(None, clock=sim.clock)
        sim.run(pacer, 3.0)
        pacer.on_rate_limited(0.0)  # a probe's 429, say: the rate settles on the capacity
        return pacer, sim.clock

    busy, busy_clock = cut_pacer()
    idle, idle_clock = cut_pacer()
    start = busy.current_rate()
    assert start is not None and start == idle.current_rate()
    for _ in range(2000):  # a second of wall time, 2,000 successes (a limit that rose)
        busy_clock.now += 0.0005
        busy.on_success()
    idle_clock.now = busy_clock.now
    idle.on_success()  # the same second, one success
    busy_rate, idle_rate = busy.current_rate(), idle.current_rate()
    assert idle_rate is not None and idle_rate <= start * 1.01
    assert busy_rate is None or busy_rate > 1.5 * start


def test_pacing_forgets_a_learned_rate_that_doubled_without_429() -> None:
    sim = Sim(at((0, 50), (5, None)))
    pacer = Pacer(None, clock=sim.clock)
    sim.run(pacer, 5.0)
    assert pacer.current_rate() is not None
    sim.run(pacer, 30.0)
    assert pacer.current_rate() is None and pacer.capacity is None
    assert not pacer.engaged


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    # A lone header-less 429 is a stray: the pause is ours to choose, and a stray gets none (the next test).
    [(0.0, 0.0), (None, 0.0), (0.5, 0.5), (30.0, 2.0)],
)
def test_pacing_429_pauses_every_request_until_retry_after(retry_after: float | None, pause: float) -> None:
    clock = Clock()
    clock.now = 100.0
    pacer = Pacer(None, max_pause=2.0, clock=clock)
    pacer.on_rate_limited(retry_after)
    assert pacer.rate_limited == 1  # Retry-After: 0 is still a 429
    assert max(0.0, pacer.delay(clock.now)) == pytest.approx(pause)
    if pause:
        assert pacer.engaged


def test_pacing_headerless_429_pauses_in_proportion_to_how_often_429s_come() -> None:
    clock = Clock()
    clock.now = 100.0
    pacer = Pacer(None, max_pause=2.0, clock=clock)
    for _ in range(200):  # a healthy run: a stray 429 among these pauses nobody
        pacer.on_success()
    pacer.on_rate_limited(None)
    assert max(0.0, pacer.delay(clock.now)) == 0.0
    pauses = []
    for _ in range(40):  # then nothing but 429s: a cluster, and the pause grows to the full default
        clock.now += 0.01
        pacer.on_rate_limited(None)
        pauses.append(max(0.0, pacer.delay(clock.now)))
    assert pauses[0] < DEFAULT_429_PAUSE / 2
    assert pauses[-1] == pytest.approx(DEFAULT_429_PAUSE)
    assert pauses == sorted(pauses)


def test_pacing_fixed_limit_is_never_exceeded() -> None:
    # The learned rate may grow, 429s may come and go: no 1.02 s window ever holds more than the fixed rate.
    sim = Sim(at((0, 60), (10, None), (20, 30)), stray=0.01)
    pacer = Pacer(40, clock=sim.clock)
    sim.run(pacer, 30.0)
    times = [t for t, _ in sim.records]
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= SPACING_MARGIN:
            start += 1
        assert end - start + 1 <= 40
    rate = pacer.current_rate()
    assert rate is not None and MIN_RATE <= rate <= 40


async def test_pacing_fixed_rate_spaces_requests() -> None:
    pacer = Pacer(50)
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        sent.append(loop.time())

    await asyncio.gather(*(one() for _ in range(10)))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= SPACING_MARGIN / 50 * 0.9
    assert sent[-1] - sent[0] >= 9 / 50


async def test_pacing_acquire_waits_out_a_pause_then_disengages() -> None:
    pacer = Pacer(None)
    loop = asyncio.get_running_loop()
    pacer.on_rate_limited(0.15)
    assert pacer.engaged
    start = loop.time()
    await pacer.acquire()
    assert loop.time() - start >= 0.14
    assert not pacer.engaged  # a lone 429 learned nothing: unpaced again once its pause is over


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (float("inf"), ValueError), ("5", TypeError), (True, TypeError)],
)
def test_pacing_rejects_bad_rate(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="rate_limit"):
        Pacer(value)  # type: ignore[arg-type]


def test_pacing_does_not_learn_a_capacity_from_its_first_partial_second() -> None:
    # Three clients start together on one 60 req/s limit; this one won 16 of the first window's requests
    # before the limiter refused it. 16 req/s is its luck in a tenth of a second, not a capacity.
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    for _ in range(16):
        pacer.count_send(clock.now)
        pacer.on_success()
        clock.now += 0.01
    for _ in range(4):
        pacer.on_rate_limited(1.0, sent_at=pacer.count_send(clock.now))
        clock.now += 0.005
    assert pacer.capacity is None
    assert pacer.current_rate() is None  # paused by the server, not paced at 16 req/s
    # A whole second later, refused again right after the server's pause: now S is a sample of the limit.
    clock.now = 1.3
    for _ in range(20):
        pacer.count_send(clock.now)
        pacer.on_success()
        clock.now += 0.005
    pacer.on_rate_limited(1.0, sent_at=pacer.count_send(clock.now))
    assert pacer.capacity == 20


def _settle_at(pacer: Pacer, clock: Clock, rate: float, seconds: float) -> None:
    """Answer every request with success at ``rate`` for ``seconds``."""
    end = clock.now + seconds
    while clock.now < end:
        pacer.count_send(clock.now)
        pacer.on_success()
        clock.now += 1.0 / rate


def _paused_by_the_server(pacer: Pacer, clock: Clock, times: int) -> tuple[float, float]:
    """Learn 20 req/s, then be refused with Retry-After: 1 ``times`` times, a second of success after each pause.

    Returns the learned rate just before the last 429 and just after it.
    """
    _settle_at(pacer, clock, 20.0, 1.5)
    for _ in range(5):  # a fifth of a second's answers refused, no pause: the accept ratio teaches 20 req/s
        pacer.on_rate_limited(0.0, sent_at=pacer.count_send(clock.now))
    assert pacer.capacity == pytest.approx(20, abs=1)
    _settle_at(pacer, clock, 20.0, 2.5)  # the 429s above fade from the running share: no stray cut below
    rates = (0.0, 0.0)
    for _ in range(times):
        before = pacer.current_rate()
        pacer.on_rate_limited(1.0, sent_at=pacer.count_send(clock.now))
        after = pacer.current_rate()
        assert before is not None and after is not None
        rates = (before, after)
        clock.now += 1.0  # the pause
        _settle_at(pacer, clock, 20.0, 1.0)
    return rates


def test_pacing_cuts_a_rate_the_server_keeps_pausing() -> None:
    # At its learned capacity and refused with Retry-After: 1 after every second of sending: a shared limit
    # whose other clients took the window. Few 429s among its answers (1 in 21), but half its time silent.
    before, after = _paused_by_the_server(Pacer(None, clock=(clock := Clock())), clock, 2)
    assert after == pytest.approx(0.8 * before)  # 2 s of pause in 5 s: cut by half that share


def test_pacing_keeps_its_rate_when_the_server_pauses_it_rarely() -> None:
    # One such pause in the last 5 s (20% of the time): what a probe costs, no cut.
    before, after = _paused_by_the_server(Pacer(None, clock=(clock := Clock())), clock, 1)
    assert after == before


def test_pacing_keeps_pacing_a_small_rate_that_doubled_by_less_than_the_margin() -> None:
    # Learned 10 req/s, then 3 s of probing with no 429 (the other clients of a shared limit paused): the rate
    # doubles, but by far less than FORGET_MARGIN, so it stays paced instead of bursting unpaced.
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    _settle_at(pacer, clock, 10.0, 1.5)
    for _ in range(5):
        pacer.on_rate_limited(0.0, sent_at=pacer.count_send(clock.now))
    assert pacer.capacity == pytest.approx(10, abs=1)
    rate = pacer.current_rate()
    while rate is not None and rate <= 21.0 and clock.now < 60:  # through the hold, then probing
        _settle_at(pacer, clock, 10.0, 0.1)
        rate = pacer.current_rate()
    assert rate is not None and 21.0 < rate < 60.0  # doubled, and still paced
    assert pacer.capacity is not None
