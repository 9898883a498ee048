"""The clock-offset estimator and the after= rule (`portable_wait._clock`): pure, no sockets."""

from __future__ import annotations

import email.utils
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portable_wait import WorkflowStatus
from portable_wait._clock import (
    BASE_MARGIN,
    MAX_MARGIN,
    MAX_PLAUSIBLE_OFFSET,
    OFFSET_QUORUM,
    ClockOffset,
    ServerClock,
    completed_after,
)
from portable_wait._polling import WaitOptions, WaitState

T0 = 1_790_000_000.0  # a local wall time, seconds


def answer(clock: ServerClock, theta: float, sent: float, latency: float, served_at: float = 0.5) -> None:
    """Feed one answer from a server whose clock is ``theta`` s ahead, stamped ``served_at`` into the trip."""
    received = sent + latency
    stamp = sent + served_at * latency + theta
    clock.observe(email.utils.formatdate(stamp, usegmt=True), sent, received)


def test_clock_no_answer_means_offset_zero_and_base_margin() -> None:
    clock = ServerClock()
    assert clock.estimate() == ClockOffset(0.0, 0.0, 0)
    assert clock.estimate().margin == BASE_MARGIN
    clock.observe(None, T0, T0 + 0.01)
    clock.observe("not a date", T0, T0 + 0.01)
    clock.observe("", T0, T0 + 0.01)
    assert clock.estimate().samples == 0


@pytest.mark.parametrize("theta", [-5.0, -0.999, 0.0, 0.25, 3.7, 299.0, -299.0])
@pytest.mark.parametrize("phase", [0.0, 0.3, 0.999])
def test_clock_one_answer_brackets_the_offset_despite_truncation(theta: float, phase: float) -> None:
    """The Date header drops the fraction of a second: one answer still bounds the offset, within ~0.5 s."""
    clock = ServerClock()
    answer(clock, theta, T0 + phase, latency=0.02)
    estimate = clock.estimate()
    assert abs(estimate.offset - theta) <= estimate.error + 1e-9
    assert estimate.error <= 0.5 + 0.02


def test_clock_answers_at_many_phases_narrow_the_estimate() -> None:
    rng = random.Random(7)
    theta = -5.318
    clock = ServerClock()
    now = T0
    for _ in range(60):
        now += rng.uniform(0.2, 2.5)
        answer(clock, theta, now, latency=rng.uniform(0.001, 0.05), served_at=rng.random())
    estimate = clock.estimate()
    assert abs(estimate.offset - theta) <= estimate.error + 1e-9
    assert estimate.error < 0.1


def test_clock_outvotes_one_wild_date_header() -> None:
    """A proxy replaying a cached answer, or one gateway with a broken clock: one sample far off is ignored."""
    rng = random.Random(3)
    theta = 2.4
    for wild_position in (0, 5, 11):  # first, middle, and the newest sample
        clock = ServerClock()
        now = T0
        for i in range(12):
            now += rng.uniform(0.3, 1.7)
            if i == wild_position:
                answer(clock, theta - 3600, now, latency=0.01)
            else:
                answer(clock, theta, now, latency=rng.uniform(0.001, 0.03), served_at=rng.random())
        estimate = clock.estimate()
        assert abs(estimate.offset - theta) <= estimate.error + 1e-9
        assert estimate.error < 0.5
        assert estimate.samples == len(clock._samples) - 1  # every honest sample agrees


def test_clock_merges_answers_with_the_same_date_without_reparsing(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ServerClock()
    date = email.utils.formatdate(T0, usegmt=True)  # the server's second T0 .. T0 + 1
    clock.observe(date, T0 - 0.5, T0 + 0.5)  # wide: offset in [-0.5, 1.5]
    calls = []
    monkeypatch.setattr(email.utils, "parsedate_tz", lambda value: calls.append(value))
    clock.observe(date, T0 - 0.01, T0 + 0.01)  # offset in [-0.01, 1.01]
    clock.observe(date, T0 + 0.7, T0 + 0.72)  # offset in [-0.72, 0.3]
    assert calls == []
    estimate = clock.estimate()
    assert estimate.samples == 1
    assert estimate.offset == pytest.approx(0.145)
    assert estimate.error == pytest.approx(0.155)


def test_clock_keeps_a_bounded_history() -> None:
    clock = ServerClock()
    for i in range(500):
        answer(clock, 1.0, T0 + i * 1.37, latency=0.01, served_at=0.5)
    assert clock.estimate().samples <= 32
    assert "offset=+" in repr(clock)


@given(
    theta=st.floats(min_value=-1e5, max_value=1e5),
    answers=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=5.0),  # pause before sending
            st.floats(min_value=0.0, max_value=2.0),  # round trip
            st.floats(min_value=0.0, max_value=1.0),  # when in the trip the server stamped it
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_clock_honest_answers_always_bracket_the_true_offset(
    theta: float, answers: list[tuple[float, float, float]]
) -> None:
    clock = ServerClock()
    now = T0
    dates = set()
    for pause, trip, stamped in answers:
        now += pause
        answer(clock, theta, now, latency=trip, served_at=stamped)
        dates.add(int(now + stamped * trip + theta))
        now += trip
    estimate = clock.estimate()
    if abs(theta) > MAX_PLAUSIBLE_OFFSET + 2 and len(dates) < OFFSET_QUORUM:
        assert estimate == ClockOffset(0.0, 0.0, 0)  # too far off, on too few answers: not applied
        return
    if MAX_PLAUSIBLE_OFFSET - 2 <= abs(theta) <= MAX_PLAUSIBLE_OFFSET + 2:
        return  # at the bound, the estimate's rounding decides which side it falls on
    # Date holds whole seconds, so floating-point rounding of T0 + theta can move a bound by an ulp or so.
    assert abs(estimate.offset - theta) <= estimate.error + 1e-6


def test_clock_ignores_answers_served_from_a_cache() -> None:
    """An ``Age`` header: an HTTP cache kept the stored response's original Date (RFC 9111)."""
    clock = ServerClock()
    clock.observe(email.utils.formatdate(T0 - 7200, usegmt=True), T0, T0 + 0.01, age="7200")
    clock.observe(email.utils.formatdate(T0 - 60, usegmt=True), T0 + 1, T0 + 1.01, age="0")
    assert clock.estimate() == ClockOffset(0.0, 0.0, 0)
    answer(clock, 1.0, T0 + 2, latency=0.01)
    assert abs(clock.estimate().offset - 1.0) <= clock.estimate().error


@pytest.mark.parametrize("theta", [-7200.0, -1_790_000_000.0, 3600.0])
def test_clock_one_implausible_date_is_not_applied(theta: float, caplog: pytest.LogCaptureFixture) -> None:
    """One answer (or one replayed Date) putting the server hours off moves nothing; a warning says so once."""
    clock = ServerClock()
    for i in range(5):  # the same Date replayed: counts as one answer, however often it comes
        clock.observe(email.utils.formatdate(T0 + theta, usegmt=True), T0 + i * 1.5, T0 + i * 1.5 + 0.01)
    assert clock.estimate() == ClockOffset(0.0, 0.0, 0)
    answer(clock, 0.4, T0 + 10, latency=0.02)
    answer(clock, 0.4, T0 + 11.3, latency=0.02)
    estimate = clock.estimate()
    assert abs(estimate.offset - 0.4) <= estimate.error + 1e-9  # the plausible answers decide
    assert caplog.text.count("ignoring the Date header") == 1


def test_clock_implausible_offset_applies_once_enough_distinct_answers_agree(caplog: pytest.LogCaptureFixture) -> None:
    theta = -7200.25
    clock = ServerClock()
    for i in range(OFFSET_QUORUM - 1):
        answer(clock, theta, T0 + i * 1.3, latency=0.01)
    assert clock.estimate().offset == 0.0
    answer(clock, theta, T0 + OFFSET_QUORUM * 1.3, latency=0.01)
    estimate = clock.estimate()
    assert abs(estimate.offset - theta) <= estimate.error + 1e-9
    assert len([r for r in caplog.records if r.name == "portable_wait"]) == 1  # one warning per client


AFTER = datetime(2026, 11, 29, 4, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("completed", "offset", "margin", "expected"),
    [
        (AFTER, 0.0, 0.0, True),
        (AFTER - timedelta(microseconds=1), 0.0, 0.0, False),
        (AFTER - timedelta(seconds=0.4), 0.0, 0.5, True),
        (AFTER - timedelta(seconds=0.6), 0.0, 0.5, False),
        # Our clock 5 s ahead (offset -5): Portable stamps a run that ends right after `after` 5 s earlier.
        (AFTER - timedelta(seconds=4.9), -5.0, 0.5, True),
        (AFTER - timedelta(seconds=6), -5.0, 0.5, False),
        # Our clock 5 s behind: a result 2 s "after" on our reading is 3 s before on Portable's.
        (AFTER + timedelta(seconds=2), 5.0, 0.5, False),
        (AFTER + timedelta(seconds=5), 5.0, 0.5, True),
    ],
)
def test_completed_after_compares_on_portables_clock(
    completed: datetime, offset: float, margin: float, expected: bool
) -> None:
    assert completed_after(completed, AFTER, offset=offset, margin=margin) is expected


def test_clock_margin_is_capped() -> None:
    assert ClockOffset(0.0, 0.05, 3).margin == pytest.approx(BASE_MARGIN + 0.05)
    assert ClockOffset(0.0, 40.0, 1).margin == MAX_MARGIN


def status(completed: datetime) -> WorkflowStatus:
    return WorkflowStatus.model_validate(
        {"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": completed.isoformat()}
    )


@pytest.mark.parametrize("theta", [-5.0, 5.0])
def test_wait_state_after_rule_reads_the_clients_clock(theta: float) -> None:
    """User clock off by 5 s either way: the new run is final, the previous one (3 s before after) is not."""
    clock = ServerClock()
    rng = random.Random(1)
    now = AFTER.timestamp()
    for _ in range(10):
        now += rng.uniform(0.1, 0.9)
        answer(clock, theta, now, latency=0.01, served_at=rng.random())
    state = WaitState(1, WaitOptions.build(after=AFTER), now=0.0, clock=clock)
    on_portables_clock = AFTER + timedelta(seconds=theta)
    assert not state.keep_polling(status(on_portables_clock + timedelta(seconds=0.2)))
    assert state.keep_polling(status(on_portables_clock - timedelta(seconds=3)))
    # Without the clock, the same two results are judged on raw timestamps, and one of them wrongly.
    naive = WaitState(1, WaitOptions.build(after=AFTER), now=0.0)
    judged = (
        naive.keep_polling(status(on_portables_clock + timedelta(seconds=0.2))),
        naive.keep_polling(status(on_portables_clock - timedelta(seconds=3))),
    )
    assert judged != (False, True)
