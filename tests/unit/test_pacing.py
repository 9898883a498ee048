"""The client-wide pacer, on the real event loop clock with short intervals."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from portable_wait._pacing import MIN_RATE, SPACING_MARGIN, Pacer


async def test_pacing_idle_without_rate_limit_or_429() -> None:
    pacer = Pacer(None)
    assert not pacer.engaged
    assert pacer.current_rate() is None
    assert "unlimited" in repr(pacer)


async def test_pacing_fixed_rate_spaces_requests() -> None:
    pacer = Pacer(50)
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        sent.append(loop.time())

    await asyncio.gather(*(one() for _ in range(10)))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= SPACING_MARGIN / 50 * 0.95
    assert sent[-1] - sent[0] >= 9 / 50


async def test_pacing_429_pauses_everyone_and_halves_the_rate() -> None:
    pacer = Pacer(None, recovery=0.3)
    loop = asyncio.get_running_loop()
    for _ in range(40):
        pacer.count_send(loop.time())
    pacer.on_rate_limited(0.15)
    # More 429s from requests that were in flight during the same overload do not halve it again.
    pacer.on_rate_limited(0.15)
    pacer.on_rate_limited(None)
    assert pacer.engaged and pacer.rate_limited == 3
    assert pacer.current_rate() == pytest.approx(20)
    start = loop.time()
    await pacer.acquire()
    assert loop.time() - start >= 0.14
    # A 429 after the pause is a new episode: halve again.
    pacer.on_rate_limited(0.0)
    assert pacer.current_rate() == pytest.approx(10)


async def test_pacing_recovers_and_disengages() -> None:
    pacer = Pacer(None, recovery=0.1)
    loop = asyncio.get_running_loop()
    for _ in range(10):
        pacer.count_send(loop.time())
    pacer.on_rate_limited(0.01)
    assert pacer.current_rate() == pytest.approx(5)
    await asyncio.sleep(0.05)
    pacer.on_success()
    assert pacer.current_rate() is not None and pacer.current_rate() > 5  # type: ignore[operator]
    await asyncio.sleep(0.4)
    pacer.on_success()
    assert pacer.current_rate() is None
    assert not pacer.engaged


async def test_pacing_adaptive_never_exceeds_fixed_and_has_a_floor() -> None:
    pacer = Pacer(3)
    pacer.on_rate_limited(0)
    assert pacer.current_rate() is not None and MIN_RATE <= pacer.current_rate() <= 3  # type: ignore[operator]
    assert pacer.engaged


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (float("inf"), ValueError), ("5", TypeError), (True, TypeError)],
)
def test_pacing_rejects_bad_rate(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="rate_limit"):
        Pacer(value)  # type: ignore[arg-type]
