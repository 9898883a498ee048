"""Argument checks shared by every public entry point. Programmer errors are plain TypeError / ValueError.

The one home of "a number, not a bool" (``True`` is an ``int`` to Python, never a duration to a user), of the
seconds checks, and of the keyword-name check that turns ``timout=5`` into an error naming ``timeout``.
"""

from __future__ import annotations

import asyncio
import difflib
import math
import re
import sys
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

__all__ = [
    "MAX_WORKFLOW_ID",
    "check_bool",
    "check_int",
    "check_keywords",
    "check_number",
    "check_seconds",
    "check_timeout",
    "check_workflow_id",
    "fromisoformat",
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


# Python 3.11's `datetime.fromisoformat` reads most ISO 8601 times; 3.10's only what `isoformat()` writes. Users
# type what `date` prints (`date +%FT%T%z`: "+0000"; `date -Ins`: ",123456789"), so on 3.10 the common forms are
# rewritten into the one it reads: basic or extended date and time, a fraction of any length after "." or ","
# (cut to microseconds, as 3.11 does), "Z" or an offset as +HH, +HHMM or +HH:MM. Week and ordinal dates stay
# 3.11+ only.
_ISO_310 = re.compile(
    r"(?P<y>\d{4})(?P<ds>-?)(?P<mo>\d{2})(?P=ds)(?P<d>\d{2})"
    r"(?:(?P<sep>.)(?P<h>\d{2})(?:(?P<ts>:?)(?P<mi>\d{2})(?:(?P=ts)(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"(?:(?P<z>Z)|(?P<sign>[+-])(?P<oh>\d{2})(?:(?P<os>:?)(?P<om>\d{2})(?:(?P=os)(?P<osec>\d{2})"
    r"(?:[.,](?P<of>\d+))?)?)?)?)?",
    re.ASCII,
)


def _fromisoformat_310(text: str) -> datetime:
    """`fromisoformat` for Python 3.10 (tested on every version against 3.11's)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        match = _ISO_310.fullmatch(text)
        if match is None:
            raise
    part = match.groupdict()
    out = f"{part['y']}-{part['mo']}-{part['d']}"
    if part["sep"] is not None:
        out += f"{part['sep']}{part['h']}:{part['mi'] or '00'}:{part['s'] or '00'}"
        if part["f"]:
            out += f".{part['f'][:6]:0<6}"
        if part["z"]:
            out += "+00:00"
        elif part["sign"]:
            out += f"{part['sign']}{part['oh']}:{part['om'] or '00'}"
            if part["osec"]:
                out += f":{part['osec']}" + (f".{part['of'][:6]:0<6}" if part["of"] else "")
    return datetime.fromisoformat(out)


def fromisoformat(text: str) -> datetime:
    """Return ``datetime.fromisoformat(text)`` as Python 3.11+ reads it, on 3.10 too (see `_ISO_310`).

    Raises:
        ValueError: ``text`` is not an ISO 8601 time.
    """
    if sys.version_info >= (3, 11):
        return datetime.fromisoformat(text)
    return _fromisoformat_310(text)
