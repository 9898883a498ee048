from __future__ import annotations

import math
from typing import Any

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
    _retry._strategy.cache_clear()
    assert PollPolicy(initial=1, maximum=10, multiplier=3, jitter=0).delay(2) == 9
    assert calls == [3]


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
