"""``portable-wait wait --after``: ISO times, Unix seconds, 'now', and bad values."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from portable_wait.cli import _NOW_LOOK_BACK, _parse_after, _UsageError, main
from portable_wait.testing import FakePortable

from .conftest import FAST, RunCli

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T04:05:06Z", datetime(2026, 11, 29, 4, 5, 6, tzinfo=UTC)),  # date -u +%FT%TZ
        ("2026-11-29T04:05:06.250z", datetime(2026, 11, 29, 4, 5, 6, 250_000, tzinfo=UTC)),
        ("2026-11-29T05:05:06+01:00", datetime(2026, 11, 29, 4, 5, 6, tzinfo=UTC)),
        ("2026-11-29T05:05:06+0100", datetime(2026, 11, 29, 4, 5, 6, tzinfo=UTC)),  # date +%FT%T%z (3.10 too)
        ("2026-11-29T04:05:06,123456789+00:00", datetime(2026, 11, 29, 4, 5, 6, 123456, tzinfo=UTC)),  # date -Ins
        ("1795925106", datetime(2026, 11, 29, 4, 5, 6, tzinfo=UTC)),  # date +%s
        (" 1795925106.5 ", datetime(2026, 11, 29, 4, 5, 6, 500_000, tzinfo=UTC)),
    ],
)
def test_cli_after_accepts_iso_and_unix_seconds(text: str, expected: datetime) -> None:
    assert _parse_after(text) == expected


def test_cli_after_without_offset_is_local_time() -> None:
    parsed = _parse_after("2026-11-29T04:05:06")
    assert parsed is not None and parsed.tzinfo is not None
    assert parsed == datetime(2026, 11, 29, 4, 5, 6).astimezone()


def test_cli_after_now_looks_back() -> None:
    before = datetime.now(UTC)
    parsed = _parse_after("NOW")
    after = datetime.now(UTC)
    assert parsed is not None
    assert before - timedelta(seconds=_NOW_LOOK_BACK) <= parsed <= after - timedelta(seconds=_NOW_LOOK_BACK)


@pytest.mark.parametrize("text", ["yesterday-ish", "2026-13-01T00:00:00Z", "nan", "inf", "-5", "1e300", ""])
def test_cli_after_bad_values_are_usage_errors(text: str) -> None:
    with pytest.raises(_UsageError, match="--after"):
        _parse_after(text)


def test_cli_after_bad_value_exits_2_naming_the_formats(
    fake: FakePortable, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
    assert main(["wait", "1", "--base-url", fake.base_url, "--after", "last tuesday"]) == 2
    err = capsys.readouterr().err
    assert "ISO 8601" in err and "Unix seconds" in err and "'now'" in err and "last tuesday" in err


def test_cli_after_now_finds_a_run_that_failed_before_the_command_started(fake: FakePortable, cli: RunCli) -> None:
    """``trigger && portable-wait wait ID --after now``: the run failed within a second, before the CLI polled."""
    fake.add_workflow(1, start=False, previous="SUCCEEDED")
    fake.trigger(1, running=0.05, outcome="FAILED", errors=["source: invalid credentials"])
    time.sleep(0.3)
    result = cli(fake, "wait", "1", "--after", "now", "--timeout", "5", "--json", *FAST)
    assert result.returncode == 1, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["outcome"] == "FAILED"


def test_cli_after_since_recipe(fake: FakePortable, cli: RunCli) -> None:
    """The README recipe: since=$(date -u +%FT%TZ); trigger ...; portable-wait wait ID --after "$since"."""
    fake.add_workflow(1, start=False, previous="FAILED", previous_completed_at=fake.now() - timedelta(seconds=30))
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.trigger(1, running=0.05, outcome="SUCCEEDED", shows_after=0.2)
    result = cli(fake, "wait", "1", "--after", since, "--timeout", "5", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    # An --after later than the run (4 minutes ahead: within the slack kept for clock skew; an hour is refused).
    stale = cli(fake, "wait", "1", "--after", str(time.time() + 240), "--timeout", "0.3", "--json", *FAST)
    assert stale.returncode == 3
    assert "no run completed after" in stale.stdout + stale.stderr


@pytest.mark.parametrize("text", ["20261129", "2026", "946684799", "0"])
def test_cli_after_unix_seconds_before_2000_are_refused_as_mistyped_dates(text: str) -> None:
    with pytest.raises(_UsageError, match=r"before 2000-01-01.*use ISO 8601"):
        _parse_after(text)


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59Z", "253402300799", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z"]
)
def test_cli_after_out_of_range_is_a_usage_error(text: str) -> None:
    with pytest.raises(_UsageError, match=r"--after .*after must be between 1970-01-01 and 9999-01-01"):
        _parse_after(text)


def test_cli_after_more_than_a_few_minutes_ahead_is_refused() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=60)  # clock skew: accepted
    assert _parse_after(soon.isoformat()) == soon
    later = datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(_UsageError, match=r"in the future.*no run can have completed after it yet"):
        _parse_after(later.isoformat())
    with pytest.raises(_UsageError, match="in the future"):
        _parse_after(str(int(time.time()) + 3600))
    with pytest.raises(_UsageError, match="in the future"):
        _parse_after("2999-01-01T00:00:00Z")


@pytest.mark.parametrize("text", ["\u0663", "\uff11\uff12", "1\u0663"])
def test_cli_after_non_ascii_digits_are_not_unix_seconds(text: str) -> None:
    with pytest.raises(_UsageError, match="ISO 8601"):
        _parse_after(text)


@pytest.mark.parametrize(
    "args", [["--after", "9999-12-31T23:59:59Z", "1"], ["--after", "20261129", "1"], ["\u0663"], [str(2**63)]]
)
def test_cli_bad_after_or_id_exits_2_without_a_traceback(fake: FakePortable, cli: RunCli, args: list[str]) -> None:
    result = cli(fake, "wait", "--timeout", "1", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr
