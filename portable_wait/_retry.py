"""Everything that touches tenacity lives here; the rest of the package never imports it.

Two uses, nested, and budgeted so they do not multiply out of control:

* **Request retries** (`retry_request`, used by `PortableClient`): one status request that fails for a transient
  reason (408, 429, 5xx, connection error, timeout, a body that is not JSON) is tried up to
  ``RetryPolicy.attempts`` times with full-jitter exponential backoff and ``Retry-After`` as a floor. The first
  try runs outside tenacity: the common, successful request pays nothing for the retry machinery.
* **Backoff curves** (`exponential_backoff`): `PollPolicy.delay` (the poll schedule every wait of the client's
  hub follows) and `RetryPolicy.delay` take their exponential curve from tenacity's ``wait_exponential``. The
  poll loop itself is the hub's (`_hub`): one driver for thousands of waits cannot be one tenacity loop per
  wait (about 10 KiB each), so tenacity computes its delays and the hub runs them. A poll whose request failed
  even after the client's retries is ridden out for at most ``PollPolicy.outage_tolerance`` seconds of
  consecutive failure, then raised.

Worst case for one poll with the defaults: 4 tries and 3 pauses of at most 10 s (or a ``Retry-After`` of at
most 120 s), plus 4 request timeouts of 30 s. The poll loop's own pause comes on top, never inside.
The last real exception is always re-raised: callers never see ``tenacity.RetryError``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from ._errors import PortableAPIError, PortableError, is_transient

if TYPE_CHECKING:
    from ._config import RetryPolicy

__all__ = ["exponential_backoff", "retry_after_of", "retry_request"]

logger = logging.getLogger("portable_wait")
T = TypeVar("T")


class _Attempt:
    """The one field of tenacity's ``RetryCallState`` that ``wait_exponential`` reads."""

    __slots__ = ("attempt_number",)

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


def exponential_backoff(initial: float, multiplier: float, maximum: float, n: int) -> float:
    """Return ``min(maximum, initial * multiplier**n)`` for n >= 0, by tenacity's ``wait_exponential``.

    tenacity answers ``maximum`` where the power overflows a float, so a wait on its ten-thousandth poll
    gets the cap, not an ``OverflowError``. Past the point where the curve reaches its cap (found once per
    curve, by tenacity too) the cap is returned without a call: a hub asks for a delay after every answer to
    every waiter, and most waits spend most of their polls at the cap.
    """
    strategy, capped_from = _curve(initial, multiplier, maximum)
    if n >= capped_from:
        return maximum
    return float(strategy(cast(RetryCallState, _Attempt(max(0, n) + 1))))


@functools.lru_cache(maxsize=256)
def _curve(initial: float, multiplier: float, maximum: float) -> tuple[wait_exponential, float]:
    """Return tenacity's strategy for a curve (``multiplier >= 1``), and the first n (0-based) from which it
    answers ``maximum``, or infinity when that cannot be vouched for (every n then asks tenacity).

    Where the cap starts is worked out from the formula, then checked by asking tenacity at that point and the
    one before, so a rounding error can only cost a call, never change a delay.
    """
    strategy = wait_exponential(multiplier=initial, max=maximum, exp_base=multiplier)

    def at(n: int) -> float:
        return float(strategy(cast(RetryCallState, _Attempt(n + 1))))

    if at(0) >= maximum:
        return strategy, 0
    if multiplier <= 1 or initial <= 0:
        return strategy, math.inf  # it never grows
    guess = max(1, math.ceil((math.log(maximum) - math.log(initial)) / math.log(multiplier)))
    for n in (guess - 1, guess, guess + 1):  # the formula may be one off either way after rounding
        if n >= 1 and at(n) >= maximum > at(n - 1):
            return strategy, n  # with multiplier >= 1 the curve never comes down from its cap
    return strategy, math.inf


def retry_after_of(error: BaseException | None) -> float | None:
    """Return the ``Retry-After`` seconds carried by ``error``, if any."""
    return error.retry_after if isinstance(error, PortableAPIError) else None


def _describe(error: BaseException | None) -> str:
    if isinstance(error, PortableAPIError):
        return f"HTTP {error.status_code} ({error.message})"
    return str(error) if error is not None else "unknown error"


async def retry_request(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    first_error: PortableError,
    *,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[BaseException | None], None] | None = None,
) -> T:
    """Retry ``attempt`` after its first try failed with the transient ``first_error``.

    Args:
        attempt: Makes one try; raises a `PortableError` on failure.
        policy: Backoff and attempt budget; ``first_error`` used up the first attempt.
        first_error: The failure of the first try.
        what: What is being fetched, for log lines.
        sleep: Awaited with each retry's delay (tests inject their own).
        on_retry: Called with the error before each retry (the client's telemetry counts them).

    Raises:
        PortableError: The last failure, once attempts run out or a failure is not transient.
    """
    if policy.attempts <= 1:
        raise first_error

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.delay(state.attempt_number + 1, retry_after_of(error))

    def log_retry(retry_number: int, error: BaseException | None, delay: float) -> None:
        if on_retry is not None:
            on_retry(error)
        level = logging.WARNING if retry_number == policy.attempts - 1 else logging.INFO
        logger.log(
            level,
            "%s failed: %s; retry %d of %d in %.2f s",
            what,
            _describe(error),
            retry_number,
            policy.attempts - 1,
            delay,
        )

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log_retry(state.attempt_number + 1, error, delay)

    first_delay = policy.delay(1, retry_after_of(first_error))
    log_retry(1, first_error, first_delay)
    await sleep(first_delay)
    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(policy.attempts - 1),
        wait=wait,
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(attempt)
