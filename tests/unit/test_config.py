from __future__ import annotations

import math
import random
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portable_wait import PollPolicy, RetryPolicy
from portable_wait._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_POLL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY,
    honour_retry_after,
)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"initial": 0}, ValueError, "initial"),
        ({"initial": -1}, ValueError, "initial"),
        ({"initial": math.nan}, ValueError, "initial"),
        ({"initial": "2"}, TypeError, "initial"),
        ({"initial": True}, TypeError, "initial"),
        ({"maximum": math.inf}, ValueError, "maximum"),
        ({"initial": 10, "maximum": 5}, ValueError, "maximum"),
        ({"multiplier": 0.5}, ValueError, "multiplier"),
        ({"multiplier": None}, TypeError, "multiplier"),
        ({"jitter": 1.5}, ValueError, "jitter"),
        ({"jitter": -0.1}, ValueError, "jitter"),
        ({"outage_tolerance": -1}, ValueError, "outage_tolerance"),
    ],
)
def test_poll_policy_rejects_bad_values(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        PollPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attempts": 0}, ValueError, "attempts"),
        ({"attempts": 2.0}, TypeError, "attempts"),
        ({"attempts": True}, TypeError, "attempts"),
        ({"initial": -1}, ValueError, "initial"),
        ({"initial": 5, "maximum": 1}, ValueError, "maximum"),
        ({"retry_after_cap": math.nan}, ValueError, "retry_after_cap"),
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        RetryPolicy(**kwargs)


def test_policies_are_frozen() -> None:
    policy = PollPolicy()
    with pytest.raises(AttributeError):
        policy.initial = 1  # type: ignore[misc]


def test_poll_policy_delay_grows_then_caps() -> None:
    policy = PollPolicy(initial=1, maximum=10, multiplier=2, jitter=0)
    assert [policy.delay(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay(10_000) == 10


def test_poll_policy_delay_is_tenacitys_wait_exponential(monkeypatch: pytest.MonkeyPatch) -> None:
    """tenacity stays the backoff engine: the poll schedule's curve is its wait_exponential."""
    import tenacity

    from portable_wait import _retry

    calls: list[int] = []

    class Spy(tenacity.wait_exponential):
        def __call__(self, retry_state: tenacity.RetryCallState) -> float:
            calls.append(retry_state.attempt_number)
            return super().__call__(retry_state)

    monkeypatch.setattr(_retry, "wait_exponential", Spy)
    _retry._curve.cache_clear()
    policy = PollPolicy(initial=1, maximum=10, multiplier=3, jitter=0)
    assert policy.delay(2) == 9
    assert calls[-1] == 3  # the pause after the third poll is tenacity's third point
    assert {3, 4} <= set(calls)  # where the cap starts (after the third pause) was checked with tenacity too
    calls.clear()
    assert policy.delay(5) == 10 and calls == []  # past the cap: tenacity's value, without a call
    _retry._curve.cache_clear()  # no Spy left behind for other tests


def test_honour_retry_after_is_one_rule() -> None:
    assert honour_retry_after(1.0, None, 5) == 1.0
    assert honour_retry_after(1.0, 3, 5) == 3
    assert honour_retry_after(1.0, 500, 5) == 5
    assert honour_retry_after(9.0, 3, 5) == 9.0


def test_defaults_are_named_once() -> None:
    assert PollPolicy() == DEFAULT_POLL and RetryPolicy() == DEFAULT_RETRY
    assert DEFAULT_REQUEST_TIMEOUT == 30.0 and DEFAULT_MAX_CONCURRENCY == 10


def test_poll_policy_jitter_only_shortens() -> None:
    policy = PollPolicy(initial=4, maximum=4, multiplier=1, jitter=0.25)
    assert policy.delay(0, rand=0.0) == 4
    assert policy.delay(0, rand=1.0) == 3


def test_retry_policy_retry_after_is_a_capped_floor() -> None:
    policy = RetryPolicy(initial=0.1, maximum=1, retry_after_cap=5)
    assert policy.delay(1, retry_after=3, rand=0.5) == 3
    assert policy.delay(1, retry_after=500, rand=0.5) == 5
    assert policy.delay(1, retry_after=None, rand=0.5) == pytest.approx(0.05)


positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(
    initial=positive,
    extra=st.floats(min_value=0, max_value=1e4),
    multiplier=st.floats(min_value=1, max_value=100),
    jitter=st.floats(min_value=0, max_value=1),
    n=st.integers(min_value=0, max_value=100_000),
    rand=st.floats(min_value=0, max_value=1),
)
def test_poll_policy_delay_never_exceeds_maximum(
    initial: float, extra: float, multiplier: float, jitter: float, n: int, rand: float
) -> None:
    policy = PollPolicy(initial=initial, maximum=initial + extra, multiplier=multiplier, jitter=jitter)
    delay = policy.delay(n, rand=rand)
    assert 0 <= delay <= policy.maximum


@given(
    initial=st.floats(min_value=0, max_value=100),
    extra=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=1000),
    retry=st.integers(min_value=1, max_value=10_000),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
    rand=st.floats(min_value=0, max_value=1),
)
def test_retry_policy_delay_bounds(
    initial: float, extra: float, cap: float, retry: int, retry_after: float | None, rand: float
) -> None:
    policy = RetryPolicy(initial=initial, maximum=initial + extra, retry_after_cap=cap)
    delay = policy.delay(retry, retry_after=retry_after, rand=rand)
    assert delay >= 0
    if retry_after is None:
        assert delay <= policy.maximum
    else:
        # Never sooner than Retry-After (up to the cap), never longer than needed.
        assert delay >= min(retry_after, cap)
        assert delay <= max(policy.maximum, min(retry_after, cap))


def test_backoff_curve_past_its_cap_is_tenacitys_without_calling_it() -> None:
    # exponential_backoff answers the cap without calling tenacity once the curve has reached it: the same value
    # tenacity's wait_exponential gives, for every curve and poll number, the overflowing ones included.
    from tenacity import RetryCallState, wait_exponential

    from portable_wait._retry import _curve, exponential_backoff

    class Attempt:
        def __init__(self, number: int) -> None:
            self.attempt_number = number

    rng = random.Random(11)
    for _ in range(300):
        initial = rng.uniform(1e-6, 60)
        multiplier = rng.choice([1.0, 1.0001, 1.1, 1.5, 2.0, 3.0, 10.0])
        maximum = initial * rng.choice([1.0, 1.5, 10.0, 1e6])
        tenacity = wait_exponential(multiplier=initial, max=maximum, exp_base=multiplier)
        for n in [*range(40), 200, 1100, 5000, 10**6]:
            expected = float(tenacity(cast(RetryCallState, Attempt(n + 1))))
            assert exponential_backoff(initial, multiplier, maximum, n) == expected, (initial, multiplier, maximum, n)
    assert _curve(2.0, 1.5, 30.0)[1] == 7  # the default poll policy reaches its 30 s cap on its 8th pause
    assert _curve(0.5, 1.0, 10.0)[1] == float("inf")  # a fixed interval below the cap never reaches it
