from __future__ import annotations

import asyncio
import math
import sys
from datetime import datetime, timedelta, timezone

import pytest

from portable_wait._validate import (
    _fromisoformat_310,
    check_bool,
    check_int,
    check_keywords,
    check_number,
    check_seconds,
    check_timeout,
    check_workflow_id,
    fromisoformat,
    unique_workflow_ids,
    unique_workflow_ids_yielding,
)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, TypeError),
        (False, TypeError),
        ("568971", TypeError),
        (1.0, TypeError),
        (None, TypeError),
        (0, ValueError),
        (-3, ValueError),
    ],
)
def test_validate_workflow_id_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="workflow_id must be a positive int"):
        check_workflow_id(value)


def test_validate_workflow_id_accepts_positive_ints() -> None:
    assert check_workflow_id(568971) == 568971
    assert check_workflow_id(2**63 - 1) == 2**63 - 1


def test_validate_workflow_id_above_int64_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at most 2\*\*63-1"):
        check_workflow_id(2**63)


def test_validate_string_id_error_suggests_int() -> None:
    with pytest.raises(TypeError, match=r"int\(\.\.\.\)"):
        check_workflow_id("5")


def test_validate_unique_ids_keeps_first_order() -> None:
    assert unique_workflow_ids([3, 1, 3, 2, 1]) == [3, 1, 2]
    with pytest.raises(TypeError):
        unique_workflow_ids("123")
    with pytest.raises(ValueError, match="positive"):
        unique_workflow_ids([1, 2, 0])


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), ("5", TypeError), (True, TypeError)])
def test_validate_timeout_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout"):
        check_timeout(value)


def test_validate_timeout_accepts() -> None:
    assert check_timeout(None) is None
    assert check_timeout(float("inf")) is None
    assert check_timeout(3) == 3.0


@pytest.mark.parametrize("value", [True, False, "1", None, [1]])
def test_validate_number_refuses_bools_and_non_numbers(value: object) -> None:
    with pytest.raises(TypeError, match="delay must be a number of seconds"):
        check_seconds(value, "delay")


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan])
def test_validate_seconds_rejects_out_of_range(value: float) -> None:
    with pytest.raises(ValueError, match="delay must be a finite number of seconds > 0"):
        check_seconds(value, "delay")


def test_validate_seconds_and_ints_accept() -> None:
    assert check_seconds(0, "x", allow_zero=True) == 0.0
    assert check_seconds(2, "x") == 2.0
    assert check_number(1.5, "x") == 1.5
    assert check_int(3, "n", minimum=1) == 3
    with pytest.raises(TypeError, match="n must be an int"):
        check_int(True, "n", minimum=1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        check_int(0, "n", minimum=1)
    with pytest.raises(TypeError, match="flag must be a bool"):
        check_bool(1, "flag")


def test_validate_keywords_names_the_typo_and_the_accepted_names() -> None:
    check_keywords({"timeout": 1}, {"timeout", "poll"}, "f")
    with pytest.raises(TypeError, match=r"^f\(\) got an unexpected keyword 'timout'; did you mean 'timeout'\? "):
        check_keywords({"timout": 1}, {"timeout", "poll"}, "f")
    with pytest.raises(TypeError, match=r"unexpected keyword 'zzz' \(accepted: poll, timeout\)"):
        check_keywords({"zzz": 1}, {"timeout", "poll"}, "f")


async def test_validate_unique_ids_yielding_matches_and_yields() -> None:
    assert await unique_workflow_ids_yielding([3, 1, 3, 2, 1], chunk=2) == [3, 1, 2]
    with pytest.raises(TypeError):
        await unique_workflow_ids_yielding("123")
    with pytest.raises(ValueError, match="positive"):
        await unique_workflow_ids_yielding([1, 2, 0])
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    await unique_workflow_ids_yielding(range(1, 20_001), chunk=5000)
    counter.cancel()
    assert turns >= 3


_UTC = timezone.utc
_ISO_TIMES = [
    ("2026-11-29T04:05:06+00:00", datetime(2026, 11, 29, 4, 5, 6, tzinfo=_UTC)),  # isoformat(): 3.10 reads it
    ("2026-11-29T04:05:06Z", datetime(2026, 11, 29, 4, 5, 6, tzinfo=_UTC)),
    ("2026-11-29T05:05:06+0100", datetime(2026, 11, 29, 5, 5, 6, tzinfo=timezone(timedelta(hours=1)))),  # %FT%T%z
    ("2026-11-29T04:05:06,123456789+00:00", datetime(2026, 11, 29, 4, 5, 6, 123456, tzinfo=_UTC)),  # date -Ins
    ("2026-11-29 04:05:06.123456789+00:00", datetime(2026, 11, 29, 4, 5, 6, 123456, tzinfo=_UTC)),  # --rfc-3339=ns
    ("2026-11-29T04:05:06.1Z", datetime(2026, 11, 29, 4, 5, 6, 100_000, tzinfo=_UTC)),
    ("2026-11-29T04:05:06.25-05", datetime(2026, 11, 29, 4, 5, 6, 250_000, tzinfo=timezone(timedelta(hours=-5)))),
    ("20261129T040506Z", datetime(2026, 11, 29, 4, 5, 6, tzinfo=_UTC)),
    ("2026-11-29T04:05", datetime(2026, 11, 29, 4, 5)),
    ("20261129", datetime(2026, 11, 29)),
    (
        "2026-11-29T04:05:06+01:00:30.5",
        datetime(2026, 11, 29, 4, 5, 6, tzinfo=timezone(timedelta(hours=1, seconds=30, microseconds=500_000))),
    ),
]
_NOT_ISO_TIMES = [
    "2026-1129T04:05:06",
    "2026-11-29T0405:06",
    "2026-11-29T04:05:06.",
    "2026-11-29T04:5:06",
    "2026-13-01",
]


@pytest.mark.parametrize("path", ["this Python's", "Python 3.10's"])
@pytest.mark.parametrize(("text", "expected"), _ISO_TIMES)
def test_fromisoformat_reads_what_date_prints_on_every_python(path: str, text: str, expected: datetime) -> None:
    parse = fromisoformat if path == "this Python's" else _fromisoformat_310
    parsed = parse(text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()
    if sys.version_info >= (3, 11):
        assert parsed == datetime.fromisoformat(text)  # the 3.10 path reads as 3.11 does


@pytest.mark.parametrize("path", ["this Python's", "Python 3.10's"])
@pytest.mark.parametrize("text", _NOT_ISO_TIMES)
def test_fromisoformat_refuses_what_3_11_refuses(path: str, text: str) -> None:
    parse = fromisoformat if path == "this Python's" else _fromisoformat_310
    with pytest.raises(ValueError):  # noqa: PT011 - datetime's own message
        parse(text)
