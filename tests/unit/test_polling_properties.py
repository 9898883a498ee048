"""Property tests of the poll loop's decisions (WaitState): deadlines, Retry-After, the after= rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from portable_wait import PollPolicy, PortableAPIError, WorkflowStatus
from portable_wait._clock import BASE_MARGIN
from portable_wait._polling import WaitOptions, WaitState

policies = st.builds(
    PollPolicy,
    initial=st.floats(min_value=0.001, max_value=100),
    maximum=st.just(1000.0),
    multiplier=st.floats(min_value=1, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
)


@given(
    policy=policies,
    polls=st.integers(min_value=1, max_value=10_000),
    timeout=st.floats(min_value=0.001, max_value=1e5),
    elapsed=st.floats(min_value=0, max_value=2e5),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e5),
    cap=st.floats(min_value=0, max_value=1e4),
)
def test_polling_next_delay_never_sleeps_past_the_deadline(
    policy: PollPolicy, polls: int, timeout: float, elapsed: float, retry_after: float | None, cap: float
) -> None:
    state = WaitState(1, WaitOptions.build(timeout=timeout, poll=policy), now=0.0)
    state.polls = polls
    error = None if retry_after is None else PortableAPIError(429, "slow down", retry_after=retry_after)
    delay = state.next_delay(error, elapsed, cap)
    assert 0 <= delay <= max(0.0, timeout - elapsed)


@given(
    policy=policies,
    polls=st.integers(min_value=1, max_value=10_000),
    retry_after=st.floats(min_value=0, max_value=1e5),
    cap=st.floats(min_value=0, max_value=1e4),
)
def test_polling_never_polls_sooner_than_retry_after(
    policy: PollPolicy, polls: int, retry_after: float, cap: float
) -> None:
    state = WaitState(1, WaitOptions.build(poll=policy), now=0.0)
    state.polls = polls
    delay = state.next_delay(PortableAPIError(429, "slow down", retry_after=retry_after), 0.0, cap)
    assert delay >= min(retry_after, cap)
    assert delay <= max(policy.maximum, min(retry_after, cap))


def status(lifecycle: str, completed: datetime | None = None) -> WorkflowStatus:
    return WorkflowStatus.model_validate(
        {
            "id": 1,
            "lifecycle": lifecycle,
            "disposition": "SUCCEEDED",
            "completedAt": completed and completed.isoformat(),
        }
    )


@given(
    offset=st.integers(min_value=-(10**12), max_value=10**12),  # microseconds, the resolution of a timestamp
    seen=st.lists(st.sampled_from(["PENDING", "RUNNING", "QUEUED"]), max_size=3),
)
def test_polling_after_rule(offset: int, seen: list[str]) -> None:
    after = datetime(2026, 1, 1, tzinfo=timezone.utc)
    state = WaitState(1, WaitOptions.build(after=after), now=0.0)
    for lifecycle in seen:
        observed = status(lifecycle)
        assert state.keep_polling(observed)
        state.on_status(observed)
    final = status("NOT_RUNNING", after + timedelta(microseconds=offset))
    # Final exactly when this wait saw the run going, or the run completed at or after `after`, less the margin
    # for clock uncertainty (no client clock here: the clocks are taken to agree).
    assert state.keep_polling(final) is not (bool(seen) or offset >= -BASE_MARGIN * 1_000_000)
