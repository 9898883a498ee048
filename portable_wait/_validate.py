"""Argument checks shared by every public entry point. Programmer errors are plain TypeError / ValueError.

The one home of "a number, not a bool" (``True`` is an ``int`` to Python, never a duration to a user), of the
seconds checks, and of the keyword-name check that turns ``timout=5`` into an error naming ``timeout``.
"""

from __future__ import annotations

import asyncio
import difflib
import math
from collections.abc import Collection, Iterable, Mapping

__all__ = [
    "MAX_WORKFLOW_ID",
    "check_bool",
    "check_int",
    "check_keywords",
    "check_number",
    "check_seconds",
    "check_timeout",
    "check_workflow_id",
    "unique_workflow_ids",
    "unique_workflow_ids_yielding",
]


MAX_WORKFLOW_ID = 2**63 - 1
"""The largest workflow ID accepted: Portable's IDs are 64-bit signed integers."""


def check_workflow_id(workflow_id: object) -> int:
    """Return ``workflow_id`` if it is a positive int; raise TypeError or ValueError naming the problem."""
    if type(workflow_id) is int and 0 < workflow_id <= MAX_WORKFLOW_ID:
        return workflow_id
    if isinstance(workflow_id, bool) or not isinstance(workflow_id, int):
        hint = " (convert it with int(...) first)" if isinstance(workflow_id, str) else ""
        raise TypeError(f"workflow_id must be a positive int, got {type(workflow_id).__name__} {workflow_id!r}{hint}")
    if workflow_id <= 0:
        raise ValueError(f"workflow_id must be a positive int, got {workflow_id}")
    if workflow_id > MAX_WORKFLOW_ID:
        raise ValueError(f"workflow_id must be at most 2**63-1 ({MAX_WORKFLOW_ID}), got {_short(workflow_id)}")
    return int(workflow_id)


def _short(value: int) -> str:
    text = str(value) if value.bit_length() < 4000 else f"an int of {value.bit_length()} bits"
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def unique_workflow_ids(workflow_ids: Iterable[object]) -> list[int]:
    """Validate every ID, then return them once each, in the order first given."""
    if isinstance(workflow_ids, (str, bytes)) or not isinstance(workflow_ids, Iterable):
        raise TypeError(f"workflow_ids must be an iterable of ints, got {type(workflow_ids).__name__}")
    return list(dict.fromkeys(check_workflow_id(w) for w in workflow_ids))


async def unique_workflow_ids_yielding(workflow_ids: Iterable[object], chunk: int = 5000) -> list[int]:
    """`unique_workflow_ids`, yielding to the event loop every ``chunk`` IDs (100,000 take about 40 ms)."""
    if isinstance(workflow_ids, (str, bytes)) or not isinstance(workflow_ids, Iterable):
        raise TypeError(f"workflow_ids must be an iterable of ints, got {type(workflow_ids).__name__}")
    seen: dict[int, None] = {}
    for n, workflow_id in enumerate(workflow_ids):
        if n and n % chunk == 0:
            await asyncio.sleep(0)
        seen[check_workflow_id(workflow_id)] = None
    return list(seen)


def check_number(value: object, name: str, *, what: str = "a number") -> float:
    """Return ``value`` as a float if it is an int or float and not a bool; raise TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an int beyond a float's range (10**400): no duration or factor is that large
        raise ValueError(f"{name} is too large ({_short(int(value))}); it must fit in a float") from None


def check_seconds(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as finite float seconds (> 0, or >= 0 with ``allow_zero``); raise naming ``name``."""
    seconds = check_number(value, name, what="a number of seconds")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return seconds


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """Return ``timeout`` as float seconds (None and infinity mean no limit); raise on anything else."""
    if timeout is None:
        return None
    seconds = check_number(timeout, name, what="a number of seconds or None")
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be > 0 seconds (or None for no limit), got {timeout!r}")
    return None if math.isinf(seconds) else seconds


def check_int(value: object, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) >= ``minimum`` (and <= ``maximum``); raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_short(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {_short(value)}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool; raise TypeError naming ``name`` (1 and "yes" are not flags)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_keywords(given: Mapping[str, object], accepted: Collection[str], where: str) -> None:
    """Raise TypeError for the first keyword in ``given`` that is not ``accepted``, suggesting the closest name."""
    for name in given:
        if name not in accepted:
            close = difflib.get_close_matches(name, list(accepted), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            names = ", ".join(sorted(accepted))
            raise TypeError(f"{where}() got an unexpected keyword {name!r}{hint} (accepted: {names})")
