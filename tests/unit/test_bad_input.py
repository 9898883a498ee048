"""Every row of the README's "Bad input, and what you get" table, each with a test. No sockets.

``ROWS`` maps a row's first cell, exactly as the README writes it, to a check; a row added to the README without
one fails `test_bad_input_every_readme_row_has_a_test`. CLI rows are tested end to end in tests/integration.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

import portable_wait.sync
from portable_wait import (
    AuthenticationError,
    InvalidResponseError,
    PollPolicy,
    PortableAPIError,
    PortableClient,
    RetryPolicy,
    TransportError,
    as_completed,
    wait_for_completion,
    wait_for_many,
)
from portable_wait._config import MAX_BODY_BYTES, MAX_CONCURRENCY_LIMIT

KEY = "sk-live+SECRET/0123456789="
BASE = "https://api.portable.io"
URL = f"{BASE}/v2/workflows/7/status"
DONE = {"id": 7, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": "2024-01-01T00:00:00Z"}
FAST = RetryPolicy(attempts=2, initial=0.001, maximum=0.001)
POLL = PollPolicy(initial=0.001, maximum=0.002, outage_tolerance=5.0)
README = Path(__file__).resolve().parents[2] / "README.md"

Check = Callable[[aioresponses], Awaitable[None]]
ROWS: dict[str, Check] = {}


def row(first_cell: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        ROWS[first_cell] = check
        return check

    return register


def client(**kwargs: Any) -> PortableClient:
    return PortableClient(KEY, **{"retry": FAST, **kwargs})


@row('workflow ID `True`, `"568971"`, `1.0`, `None`')
async def _ids_of_wrong_type(mocked: aioresponses) -> None:
    async with client() as c:
        for value in (True, "568971", 1.0, None):
            with pytest.raises(TypeError, match="workflow_id must be a positive int"):
                await c.get_workflow_status(value)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"convert it with int\(\.\.\.\) first"):
            await c.get_workflow_status("568971")  # type: ignore[arg-type]


@row("workflow ID `0`, `-5`")
async def _ids_not_positive(mocked: aioresponses) -> None:
    async with client() as c:
        for value in (0, -5):
            with pytest.raises(ValueError, match=f"positive int, got {value}"):
                await c.get_workflow_status(value)


@row("workflow ID above `2**63-1`")
async def _ids_too_large(mocked: aioresponses) -> None:
    async with client() as c:
        for value in (2**63, 2**1000):
            with pytest.raises(ValueError, match=r"at most 2\*\*63-1 \(9223372036854775807\)"):
                await c.get_workflow_status(value)
        assert c.request_count == 0
    mocked.get(f"{BASE}/v2/workflows/{2**63 - 1}/status", payload={**DONE, "id": 2**63 - 1})
    async with client() as c:
        assert (await c.get_workflow_status(2**63 - 1)).id == 2**63 - 1


@row("`workflow_ids` a string, or containing a bad ID")
async def _id_lists(mocked: aioresponses) -> None:
    async with client() as c:
        with pytest.raises(TypeError, match="iterable of ints"):
            await wait_for_many(c, "123")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="got 0"):
            await wait_for_many(c, [7, 0])
        with pytest.raises(TypeError, match="str"):
            async for _ in as_completed(c, [7, "8"]):  # type: ignore[list-item]
                pass
        assert c.request_count == 0


@row("no `api_key` and `PORTABLE_API_KEY` unset or blank")
async def _no_key(mocked: aioresponses) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for value in (None, "  "):
            if value is None:
                patch.delenv("PORTABLE_API_KEY", raising=False)
            else:
                patch.setenv("PORTABLE_API_KEY", value)
            with pytest.raises(ValueError, match=r"no Portable API key.*PORTABLE_API_KEY"):
                PortableClient()


@row("key with whitespace, newlines or non-ASCII")
async def _malformed_key(mocked: aioresponses) -> None:
    for key in ("abc def-secret", "abc\ndef-secret", "abcdéf-secret"):
        with pytest.raises(ValueError, match="whitespace or non-printable") as caught:
            PortableClient(key)
        assert "secret" not in str(caught.value)


@row("wrong or revoked key")
async def _wrong_key(mocked: aioresponses) -> None:
    mocked.get(URL, status=401, payload={"message": "invalid token"}, repeat=True)
    async with client() as c:
        with pytest.raises(AuthenticationError):
            await c.get_workflow_status(7)
        assert c.request_count == 1


@row('`base_url="http://api.example.com"`')
async def _clear_text(mocked: aioresponses) -> None:
    with pytest.raises(ValueError, match="clear text"):
        client(base_url="http://api.example.com")


@row("`base_url` with credentials, a query or fragment, or not http(s)")
async def _url_parts(mocked: aioresponses) -> None:
    for url, match in [
        ("https://user:hunter2@api.portable.io", "credentials"),
        ("https://api.portable.io?x=1", "query or fragment"),
        ("https://api.portable.io/#top", "query or fragment"),
        ("ftp://api.portable.io", "https://"),
    ]:
        with pytest.raises(ValueError, match=match) as caught:
            client(base_url=url)
        assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="not a URL") as caught:
        client(base_url="https://user:hunter2@api.portable.io:99999")
    assert "hunter2" not in str(caught.value)


@row('`base_url="https://api.portable.io/v2"`')
async def _url_path(mocked: aioresponses) -> None:
    for url in ("https://api.portable.io/v2", "https://api.portable.io/v2/", "https://gw.example.com/p/v2/workflows"):
        with pytest.raises(ValueError, match="/v2 path; give the root"):
            client(base_url=url)
    # Any other path is a prefix, for a proxy: requests go below it.
    mocked.get("https://gw.example.com/portable/v2/workflows/7/status", payload=DONE)
    async with client(base_url="https://gw.example.com/portable/") as c:
        assert c.base_url == "https://gw.example.com/portable"
        assert (await c.get_workflow_status(7)).id == 7


@row("`base_url` with spaces, or a host that is no valid name or IP (`https://-x-.io`, `https://300.1.1.1`)")
async def _url_host(mocked: aioresponses) -> None:
    for url in ("https://api portable.io", " https://api.portable.io/a b", "https://api.portable.io\t/x"):
        with pytest.raises(ValueError, match="spaces or control characters"):
            client(base_url=url)
    for url in ("https://-x-.io", "https://300.1.1.1", "https://a_b.example.com", "https://..", "https://a..b"):
        with pytest.raises(ValueError, match="valid host name or IP"):
            client(base_url=url)
    for url in ("https://api.portable.io", "https://[2001:db8::1]", "https://10.0.0.5", "https://bücher.example"):
        client(base_url=url)


@row('`timeout=0`, `-1`, `nan`; `timeout="10"`')
async def _timeouts(mocked: aioresponses) -> None:
    async with client() as c:
        for value in (0, -1, math.nan):
            with pytest.raises(ValueError, match="timeout must be > 0"):
                await wait_for_completion(c, 7, timeout=value)
        with pytest.raises(TypeError, match="timeout must be a number"):
            await wait_for_completion(c, 7, timeout="10")  # type: ignore[arg-type]
        mocked.get(URL, payload=DONE, repeat=True)
        for unlimited in (None, math.inf):
            assert (await wait_for_completion(c, 7, timeout=unlimited)).id == 7


@row("`PollPolicy(initial=0)`, `maximum < initial`, `multiplier < 1`, `jitter` outside 0..1")
async def _poll_policy(mocked: aioresponses) -> None:
    cases: list[tuple[dict[str, float], str]] = [
        ({"initial": 0}, "initial"),
        ({"initial": 5, "maximum": 1}, "maximum"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValueError, match=field):
            PollPolicy(**kwargs)


@row("`RetryPolicy(attempts=0)`, `attempts=2.0`")
async def _retry_policy(mocked: aioresponses) -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(TypeError, match="attempts"):
        RetryPolicy(attempts=2.0)  # type: ignore[arg-type]


@row("`max_concurrency=0`, `rate_limit=0`")
async def _limits(mocked: aioresponses) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        client(max_concurrency=0)
    with pytest.raises(ValueError, match="rate_limit"):
        client(rate_limit=0)


@row("`after=datetime(2024, 1, 1)` (naive)")
async def _naive_after(mocked: aioresponses) -> None:
    async with client() as c:
        with pytest.raises(ValueError, match="after must be timezone-aware"):
            await wait_for_completion(c, 7, after=datetime(2024, 1, 1))


@row('`on_poll="print"`')
async def _on_poll(mocked: aioresponses) -> None:
    async with client() as c:
        with pytest.raises(TypeError, match="on_poll must be callable"):
            await wait_for_completion(c, 7, on_poll="print")  # type: ignore[arg-type]


@row("an unknown keyword to `wait_for_many` / `as_completed`")
async def _unknown_keyword(mocked: aioresponses) -> None:
    async with client() as c:
        with pytest.raises(TypeError, match="timout"):
            await wait_for_many(c, [7], timout=5)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="timout"):
            async for _ in as_completed(c, [7], timout=5):  # type: ignore[call-arg]
                pass
        assert c.request_count == 0


@row("`portable_wait.sync.*` inside a running event loop")
async def _sync_in_loop(mocked: aioresponses) -> None:
    with pytest.raises(RuntimeError, match=r"await portable_wait\.get_workflow_status"):
        portable_wait.sync.get_workflow_status(7, api_key=KEY)


@row("server answers a non-JSON or cut-short body")
async def _non_json(mocked: aioresponses) -> None:
    mocked.get(URL, body="<html>502 Bad Gateway</html>", repeat=True)
    async with client() as c:
        with pytest.raises(InvalidResponseError) as caught:
            await c.get_workflow_status(7)
        assert caught.value.transient and c.request_count == 2
    mocked.clear()
    mocked.get(URL, body="<html>", content_type="text/html")
    mocked.get(URL, payload=DONE)
    async with client(retry=RetryPolicy(attempts=1)) as c:
        assert (await wait_for_completion(c, 7, poll=POLL)).id == 7  # ridden out like an outage


@row("server answers JSON that is not a status")
async def _not_a_status(mocked: aioresponses) -> None:
    mocked.get(URL, payload={"id": 7, "lifecycle": 5, "disposition": ["SECRETVALUE"]}, repeat=True)
    async with client() as c:
        with pytest.raises(InvalidResponseError, match="lifecycle") as caught:
            await c.get_workflow_status(7)
        assert not caught.value.transient and c.request_count == 1
        assert "SECRETVALUE" not in str(caught.value)


@row("server sends `completedAt` before `0001-01-01T00:00:00Z` once in UTC (`0001-01-01T00:00:00+01:00`)")
async def _completed_at_before_utc_min(mocked: aioresponses) -> None:
    mocked.get(URL, payload={**DONE, "completedAt": "0001-01-01T00:00:00+01:00"}, repeat=True)
    async with client() as c:
        with pytest.raises(InvalidResponseError, match=r"completedAt.*outside the range") as caught:
            await c.get_workflow_status(7)
        assert not caught.value.transient and c.request_count == 1


@row("server sends a body over 1 MiB (`MAX_BODY_BYTES`; an endless chunked stream)")
async def _body_over_the_cap(mocked: aioresponses) -> None:
    # The real 1 MiB limit, chunked, until-close and Content-Length, on a real socket: tests/integration/
    # test_limits.py. aioresponses cannot feed a body that large, so here the limit is lowered.
    assert MAX_BODY_BYTES == 1024 * 1024
    mocked.get(URL, payload={**DONE, "pad": "x" * 2048}, repeat=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("portable_wait._client.MAX_BODY_BYTES", 1024)
        async with client() as c:
            with pytest.raises(InvalidResponseError, match="longer than 1,024 bytes") as caught:
                await c.get_workflow_status(7)
            assert caught.value.transient and c.request_count == 2  # retried, as a proxy's problem may pass


@row("server answers about another workflow ID")
async def _other_id(mocked: aioresponses) -> None:
    mocked.get(URL, payload={**DONE, "id": 8}, repeat=True)
    async with client() as c:
        with pytest.raises(InvalidResponseError, match="answered about workflow 8"):
            await c.get_workflow_status(7)
        assert c.request_count == 1


@row("server sends `completedAt` of `...T23:59:60Z` (a leap second)")
async def _leap_second(mocked: aioresponses) -> None:
    mocked.get(URL, payload={**DONE, "completedAt": "2016-12-31T23:59:60Z"})
    async with client() as c:
        status = await c.get_workflow_status(7)
    assert status.completed_at == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)


@row("server sends `completedAt` as a number or a numeric string")
async def _numeric_completed_at(mocked: aioresponses) -> None:
    for value in (1483228799, "1483228799", "1483228799.5"):
        mocked.get(URL, body=json.dumps({**DONE, "completedAt": value}))
        async with client() as c:
            with pytest.raises(InvalidResponseError, match="completedAt"):
                await c.get_workflow_status(7)


@row("server echoes the API key (a message, a value, `errors`, a header, a malformed answer, a redirect)")
async def _echoed_key(mocked: aioresponses) -> None:
    # Every channel, every encoding, against a real socket: tests/integration/test_secrets.py. Here, the two
    # that the table names first, through aioresponses.
    escaped = KEY.replace("/", "\\/").replace("+", "\\u002b")
    mocked.get(URL, status=400, body=f'{{"message": "bad token {escaped}"}}')
    mocked.get(URL, payload={**DONE, "disposition": "FAILED", "errors": [f"token {KEY} rejected"]})
    async with client() as c:
        with pytest.raises(PortableAPIError) as caught:
            await c.get_workflow_status(7)
        assert "[redacted]" in str(caught.value) and "SECRET" not in str(caught.value)
        status = await c.get_workflow_status(7)
    assert status.errors == ("token [redacted] rejected",)


@row("`PORTABLE_BASE_URL` set to such a URL (and no `base_url`)")
async def _bad_base_url_env(mocked: aioresponses) -> None:
    saved = os.environ.get("PORTABLE_BASE_URL")
    try:
        for bad in ("http://api.example.com", "https://user:pw@api.portable.io", "https://api.portable.io/?x=1"):
            os.environ["PORTABLE_BASE_URL"] = bad
            with pytest.raises(ValueError, match="PORTABLE_BASE_URL"):
                PortableClient(KEY)
    finally:
        if saved is None:
            os.environ.pop("PORTABLE_BASE_URL", None)
        else:
            os.environ["PORTABLE_BASE_URL"] = saved


@row("`max_concurrency=1001` or more")
async def _max_concurrency_bound(mocked: aioresponses) -> None:
    assert PortableClient(KEY, max_concurrency=MAX_CONCURRENCY_LIMIT).max_concurrency == 1000
    for value in (1001, 10**6, 2**63):
        with pytest.raises(ValueError, match="max_concurrency must be <= 1000"):
            PortableClient(KEY, max_concurrency=value)


@row("a number too large for a float (`timeout=10**400`, `PollPolicy(initial=10**400)`)")
async def _numbers_beyond_float(mocked: aioresponses) -> None:
    huge = 10**400
    for field in ("initial", "maximum", "multiplier", "outage_tolerance"):
        with pytest.raises(ValueError, match=rf"PollPolicy\.{field} is too large"):
            PollPolicy(**{field: huge})
    with pytest.raises(ValueError, match=r"RetryPolicy\.initial is too large"):
        RetryPolicy(initial=huge)
    with pytest.raises(ValueError, match="request_timeout is too large"):
        PortableClient(KEY, request_timeout=huge)
    async with client() as c:
        with pytest.raises(ValueError, match="timeout is too large"):
            await wait_for_completion(c, 7, timeout=huge)
        assert c.request_count == 0


@row("`after` before 1970 or past 9999-01-01 UTC (`datetime.max`)")
async def _after_out_of_range(mocked: aioresponses) -> None:
    late = timezone(timedelta(hours=-23))
    async with client() as c:
        for after in (
            datetime.max.replace(tzinfo=timezone.utc),
            datetime.max.replace(tzinfo=late),  # beyond what UTC can hold
            datetime.min.replace(tzinfo=timezone.utc),
            datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc),
        ):
            with pytest.raises(ValueError, match="after must be between 1970-01-01 and 9999-01-01 UTC"):
                await wait_for_completion(c, 7, after=after)
        assert c.request_count == 0


@row('`first_contact_timeout=0`, `"30"`')
async def _first_contact_timeout(mocked: aioresponses) -> None:
    with pytest.raises(ValueError, match="first_contact_timeout"):
        PortableClient(KEY, first_contact_timeout=0)
    with pytest.raises(TypeError, match="first_contact_timeout"):
        PortableClient(KEY, first_contact_timeout="30")  # type: ignore[arg-type]
    for off in (None, math.inf):
        assert PortableClient(KEY, first_contact_timeout=off).first_contact_timeout in (None, math.inf)


@row("a wrong base URL, port, DNS name or TLS setup")
async def _never_reached(mocked: aioresponses) -> None:
    refused = aiohttp.ClientConnectorError(
        SimpleNamespace(ssl=None, host="api.portable.io", port=443),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "refused"),
    )
    mocked.get(URL, exception=refused, repeat=True)
    async with client(first_contact_timeout=0.05) as c:
        with pytest.raises(TransportError) as caught:
            await wait_for_completion(c, 7, poll=POLL, timeout=5)
    assert caught.value.transient is False
    assert f"never reached Portable at {BASE}: connection refused" in str(caught.value)


@row("server redirects")
async def _redirect(mocked: aioresponses) -> None:
    mocked.get(URL, status=302, headers={"Location": "https://elsewhere.example/x"}, repeat=True)
    async with client() as c:
        with pytest.raises(PortableAPIError, match="not followed") as caught:
            await c.get_workflow_status(7)
        assert caught.value.status_code == 302 and c.request_count == 1


def _readme_rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Bad input, and what you get", 1)[1].split("\n## ", 1)[0]
    cells = [line.split(" | ")[0].removeprefix("| ") for line in section.splitlines() if line.startswith("| ")]
    return [c for c in cells if c not in ("input", "---")]


def test_bad_input_every_readme_row_has_a_test() -> None:
    rows = _readme_rows()
    # CLI rows are end-to-end tests of the command (tests/integration/test_cli.py).
    missing = [r for r in rows if r not in ROWS and not re.match(r"(CLI|`portable-wait|.*fake-server)", r)]
    assert not missing, f"README rows without a test in ROWS: {missing}"
    stale = [r for r in ROWS if r not in rows]
    assert not stale, f"ROWS not in the README any more: {stale}"


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.mark.parametrize("first_cell", list(ROWS))
async def test_bad_input_readme_row(first_cell: str, mocked: aioresponses) -> None:
    await ROWS[first_cell](mocked)
