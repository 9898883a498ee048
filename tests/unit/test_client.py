"""PortableClient against aioresponses: error mapping, retries, Retry-After, redaction. No sockets."""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from portable_wait import (
    AuthenticationError,
    Disposition,
    InvalidResponseError,
    Lifecycle,
    PermissionDeniedError,
    PortableAPIError,
    PortableClient,
    RetryPolicy,
    TransportError,
    WorkflowNotFoundError,
)

KEY = "sk-live-SECRET-0123456789"
BASE = "https://api.portable.io"
URL = f"{BASE}/v2/workflows/7/status"
OK = {"id": 7, "lifecycle": "RUNNING", "disposition": "NONE", "resources": [], "errors": [], "completedAt": None}
FAST = RetryPolicy(attempts=3, initial=0.001, maximum=0.002, retry_after_cap=0.05)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[PortableClient]:
    async with PortableClient(KEY, retry=FAST) as c:
        yield c


def calls(m: aioresponses) -> int:
    return sum(len(v) for v in m.requests.values())


async def test_client_parses_status(mocked: aioresponses, client: PortableClient) -> None:
    mocked.get(URL, payload=OK)
    status = await client.get_workflow_status(7)
    assert status.lifecycle is Lifecycle.RUNNING and status.disposition is Disposition.NONE
    assert client.request_count == 1


@pytest.mark.parametrize(
    ("code", "cls"),
    [(401, AuthenticationError), (403, PermissionDeniedError), (404, WorkflowNotFoundError), (400, PortableAPIError)],
)
async def test_client_maps_permanent_errors_without_retrying(
    mocked: aioresponses, client: PortableClient, code: int, cls: type[PortableAPIError]
) -> None:
    mocked.get(URL, status=code, payload={"message": "server says no"}, repeat=True)
    with pytest.raises(cls) as info:
        await client.get_workflow_status(7)
    assert type(info.value) is cls
    assert info.value.status_code == code
    assert info.value.message == "server says no"
    assert info.value.workflow_id == 7
    assert calls(mocked) == 1


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
async def test_client_retries_transient_status_then_succeeds(
    mocked: aioresponses, client: PortableClient, code: int
) -> None:
    mocked.get(URL, status=code, payload={"message": "busy"})
    mocked.get(URL, payload=OK)
    status = await client.get_workflow_status(7)
    assert status.id == 7
    assert calls(mocked) == 2


async def test_client_raises_last_http_error_when_attempts_run_out(
    mocked: aioresponses, client: PortableClient
) -> None:
    mocked.get(URL, status=500, payload={"message": "first"})
    mocked.get(URL, status=502, payload={"message": "second"})
    mocked.get(URL, status=503, payload={"message": "third"})
    with pytest.raises(PortableAPIError) as info:
        await client.get_workflow_status(7)
    assert info.value.status_code == 503 and info.value.message == "third"
    assert calls(mocked) == 3


@pytest.mark.parametrize(
    "exc",
    [aiohttp.ClientConnectionError("refused"), aiohttp.ServerDisconnectedError(), asyncio.TimeoutError()],
)
async def test_client_retries_transport_failures_and_raises_transport_error(
    mocked: aioresponses, client: PortableClient, exc: Exception
) -> None:
    mocked.get(URL, exception=exc, repeat=True)
    with pytest.raises(TransportError) as info:
        await client.get_workflow_status(7)
    assert info.value.workflow_id == 7
    assert calls(mocked) == 3


async def test_client_timeout_message_names_the_timeout(mocked: aioresponses) -> None:
    mocked.get(URL, exception=asyncio.TimeoutError(), repeat=True)
    async with PortableClient(KEY, request_timeout=2.5, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(TransportError, match=r"timed out after 2\.5 s"):
            await c.get_workflow_status(7)


def test_client_timeout_keyword_is_deprecated_for_request_timeout() -> None:
    with pytest.warns(DeprecationWarning, match=r"timeout=.*request_timeout="):
        client = PortableClient(KEY, timeout=2.5)
    assert client.request_timeout == 2.5
    assert PortableClient(KEY).request_timeout == 30.0
    with pytest.raises(TypeError, match="request_timeout= only"):
        PortableClient(KEY, timeout=2.5, request_timeout=3.0)


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", '{"id": 7, "lifecy', ""])
async def test_client_retries_non_json_bodies(mocked: aioresponses, client: PortableClient, body: str) -> None:
    mocked.get(URL, status=200, body=body)
    mocked.get(URL, payload=OK)
    assert (await client.get_workflow_status(7)).id == 7
    assert calls(mocked) == 2


async def test_client_non_json_body_raises_invalid_response_after_retries(
    mocked: aioresponses, client: PortableClient
) -> None:
    mocked.get(URL, status=200, body="<html>oops</html>", repeat=True)
    with pytest.raises(InvalidResponseError, match="not JSON") as info:
        await client.get_workflow_status(7)
    assert info.value.transient
    assert calls(mocked) == 3


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 7, "lifecycle": "RUNNING"},
        {"id": "7", "lifecycle": "RUNNING", "disposition": "NONE"},
        [1, 2, 3],
        {"id": 8, "lifecycle": "RUNNING", "disposition": "NONE"},
    ],
)
async def test_client_wrong_shape_is_invalid_and_not_retried(
    mocked: aioresponses, client: PortableClient, payload: Any
) -> None:
    mocked.get(URL, status=200, payload=payload, repeat=True)
    with pytest.raises(InvalidResponseError) as info:
        await client.get_workflow_status(7)
    assert not info.value.transient
    assert calls(mocked) == 1


async def test_client_retry_after_is_a_floor(mocked: aioresponses) -> None:
    policy = RetryPolicy(attempts=2, initial=0.0, maximum=0.0, retry_after_cap=10)
    mocked.get(URL, status=429, headers={"Retry-After": "0.3"}, payload={"message": "slow down"})
    mocked.get(URL, payload=OK)
    async with PortableClient(KEY, retry=policy) as c:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await c.get_workflow_status(7)
        assert loop.time() - start >= 0.29


async def test_client_retry_after_is_capped(mocked: aioresponses) -> None:
    policy = RetryPolicy(attempts=2, initial=0.0, maximum=0.0, retry_after_cap=0.05)
    mocked.get(URL, status=503, headers={"Retry-After": "3600"}, payload={"message": "maintenance"})
    mocked.get(URL, payload=OK)
    async with PortableClient(KEY, retry=policy) as c:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await c.get_workflow_status(7)
        assert loop.time() - start < 5


async def test_client_logs_retries(
    mocked: aioresponses, client: PortableClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="portable_wait")
    mocked.get(URL, status=503, payload={"message": "busy"})
    mocked.get(URL, payload=OK)
    await client.get_workflow_status(7)
    assert any("retry 1 of 2" in r.getMessage() and "503" in r.getMessage() for r in caplog.records)


async def test_client_does_not_follow_redirects(mocked: aioresponses, client: PortableClient) -> None:
    mocked.get(URL, status=302, headers={"Location": "https://evil.example/steal"})
    with pytest.raises(PortableAPIError, match="not followed") as info:
        await client.get_workflow_status(7)
    assert info.value.status_code == 302
    assert calls(mocked) == 1


async def test_client_validates_workflow_id_before_any_request(mocked: aioresponses, client: PortableClient) -> None:
    with pytest.raises(TypeError):
        await client.get_workflow_status("7")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        await client.get_workflow_status(0)
    assert calls(mocked) == 0


# -- the key ---------------------------------------------------------------------------------------------------


def test_client_reads_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTABLE_API_KEY", KEY)
    assert PortableClient()._headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_client_without_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("PORTABLE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("PORTABLE_API_KEY", value)
    with pytest.raises(ValueError, match="PORTABLE_API_KEY"):
        PortableClient()


@pytest.mark.parametrize("key", ["", "two words", "line\nbreak", "tab\tkey", "caf\u00e9"])
def test_client_rejects_malformed_keys(key: str) -> None:
    with pytest.raises(ValueError, match="api_key") as info:
        PortableClient(key)
    assert key.strip() == "" or key not in str(info.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://api.portable.io", "clear text"),
        ("http://10.0.0.5:8080", "clear text"),
        ("ftp://api.portable.io", "https://"),
        ("api.portable.io", "https://"),
        ("https://user:pw@api.portable.io", "credentials"),
        ("https://api.portable.io?x=1", "query"),
    ],
)
def test_client_rejects_bad_base_urls(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PortableClient(KEY, base_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://x.io/"])
def test_client_accepts_https_and_loopback_http(url: str) -> None:
    assert PortableClient(KEY, base_url=url).base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"request_timeout": 0}, ValueError),
        ({"request_timeout": "30"}, TypeError),
        ({"request_timeout": True}, TypeError),
        ({"max_concurrency": True}, TypeError),
        ({"max_concurrency": 0}, ValueError),
        ({"max_concurrency": 2.5}, TypeError),
        ({"retry": 3}, TypeError),
        ({"rate_limit": 0}, ValueError),
        ({"rate_limit": "fast"}, TypeError),
    ],
)
def test_client_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        PortableClient(KEY, **kwargs)


async def test_client_key_never_in_repr_errors_or_logs(mocked: aioresponses, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"bad token Bearer {KEY}"
    mocked.get(URL, status=401, body=echo)
    mocked.get(URL, status=503, payload={"message": echo})
    mocked.get(URL, status=503, payload={"message": echo})
    mocked.get(URL, exception=aiohttp.ClientConnectionError(f"reset while sending {KEY}"), repeat=True)
    seen: list[str] = []
    async with PortableClient(KEY, retry=FAST) as c:
        seen.append(repr(c))
        seen.append(str(c))
        for _ in range(3):
            try:
                await c.get_workflow_status(7)
            except Exception as exc:
                seen.append(repr(exc))
                seen.append(str(exc))
                seen.append("".join(traceback.format_exception(exc)))
    seen.extend(r.getMessage() for r in caplog.records)
    assert seen
    for text in seen:
        assert KEY not in text, text
    assert any("[redacted]" in text for text in seen)


async def test_client_closed_client_refuses_requests(mocked: aioresponses) -> None:
    c = PortableClient(KEY)
    async with c:
        pass
    await c.aclose()
    assert "closed" in repr(c)
    with pytest.raises(RuntimeError, match="closed"):
        await c.get_workflow_status(7)


def test_client_user_agent_names_the_version() -> None:
    import portable_wait

    ua = PortableClient(KEY)._headers["User-Agent"]
    assert re.fullmatch(rf"portable-wait/{re.escape(portable_wait.__version__)}", ua)


async def test_client_never_chains_errors_that_carry_request_headers(mocked: aioresponses) -> None:
    """aiohttp's ClientResponseError repr includes the request headers, bearer token included."""
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL as YURL

    info = aiohttp.RequestInfo(
        YURL(URL), "GET", CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {KEY}"})), YURL(URL)
    )
    leaky = aiohttp.ClientResponseError(info, (), status=400, message="Bad Request")
    assert KEY in repr(leaky.request_info)
    mocked.get(URL, exception=leaky, repeat=True)
    async with PortableClient(KEY, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(TransportError) as caught:
            await c.get_workflow_status(7)
    # Not merely hidden from tracebacks (`from None`): not referenced at all, since error reporters walk
    # __context__ whatever __suppress_context__ says.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert KEY not in "".join(traceback.format_exception(caught.value))


async def test_client_validation_errors_never_quote_the_body(mocked: aioresponses) -> None:
    mocked.get(URL, payload={"id": 7, "lifecycle": 5, "disposition": [KEY], "errors": [KEY, 1], "x": KEY}, repeat=True)
    async with PortableClient(KEY, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(InvalidResponseError) as caught:
            await c.get_workflow_status(7)
    text = "".join(traceback.format_exception(caught.value))
    assert KEY not in text
    assert "disposition" in str(caught.value)
