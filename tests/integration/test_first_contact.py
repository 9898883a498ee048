"""First contact: a server this client has never reached fails fast; one that answered before is ridden out."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from types import SimpleNamespace

import aiohttp
import pytest

from portable_wait import (
    Disposition,
    PollPolicy,
    PortableClient,
    TransportError,
    wait_for_completion,
    wait_for_many,
)
from portable_wait._client import _connection_failure
from portable_wait._errors import is_transient
from portable_wait.testing import FAST_POLL, FAST_RETRY, FakePortable

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

# Rides out 5 s of failures: a fast failure below comes from first contact, not from the outage tolerance.
POLL = FAST_POLL


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def closed_client(first_contact_timeout: float | None = 0.3) -> PortableClient:
    url = f"http://127.0.0.1:{closed_port()}"
    return PortableClient("k", base_url=url, retry=FAST_RETRY, first_contact_timeout=first_contact_timeout)


async def test_first_contact_wrong_port_fails_fast_naming_url_and_cause() -> None:
    start = time.monotonic()
    async with closed_client() as client:
        with pytest.raises(TransportError) as info:
            await wait_for_completion(client, 1, poll=POLL)
        url = client.base_url
        # The next wait on the same client does not start the tolerance over: it fails on its first try.
        before = client.request_count
        with pytest.raises(TransportError):
            await wait_for_completion(client, 2, poll=POLL)
        requests_for_second_wait = client.request_count - before
    assert time.monotonic() - start < POLL.outage_tolerance
    error = info.value
    assert not is_transient(error) and error.transient is False
    assert f"never reached Portable at {url}: connection refused" in str(error)
    assert "first_contact_timeout=0.3 s" in str(error)
    assert requests_for_second_wait == 1


async def test_first_contact_wait_for_many_fails_every_wait_fast() -> None:
    start = time.monotonic()
    async with closed_client() as client:
        with pytest.raises(ExceptionGroup) as info:
            await wait_for_many(client, [1, 2, 3], poll=POLL)
        outcomes = await wait_for_many(client, [4, 5], poll=POLL, return_exceptions=True)
    assert time.monotonic() - start < POLL.outage_tolerance
    errors = list(info.value.exceptions) + list(outcomes.values())
    assert len(errors) == 5
    for error in errors:
        assert isinstance(error, TransportError) and not error.transient
        assert f"never reached Portable at {client.base_url}: connection refused" in str(error)


async def test_first_contact_disabled_rides_out_as_an_outage() -> None:
    async with closed_client(first_contact_timeout=None) as client:
        with pytest.raises(TransportError) as info:
            await wait_for_completion(client, 1, poll=PollPolicy(initial=0.01, maximum=0.05, outage_tolerance=0.3))
    assert info.value.transient  # the outage tolerance ended it, with the last (transient) error


async def test_first_contact_a_server_that_drops_every_connection_was_never_reached() -> None:
    async with FakePortable() as fake:
        fake.add_workflow(1, running=60)
        fake.add_fault("drop")
        async with fake.client(first_contact_timeout=0.3) as client:
            with pytest.raises(TransportError) as info:
                await wait_for_completion(client, 1, poll=POLL)
    assert not info.value.transient
    assert "connection closed with no answer" in str(info.value)


async def test_first_contact_any_http_answer_counts_as_reached() -> None:
    """A 503 is an answer: the address is right, so a later outage is ridden out even past first contact."""
    async with FakePortable() as fake:
        fake.add_workflow(1, running=1.2)
        fake.add_fault("503", requests=[1])
        fake.add_fault("drop", between=(0.1, 0.9))  # 8x the first-contact tolerance
        async with fake.client(first_contact_timeout=0.1) as client:
            status = await wait_for_completion(client, 1, poll=POLL)
    assert status.disposition is Disposition.SUCCEEDED
    assert any(r.fault == "drop" for r in fake.requests)


async def test_first_contact_server_that_answered_then_went_away_is_ridden_out() -> None:
    fake = FakePortable()
    await fake.start()
    port, key = fake.port, fake.api_key
    fake.add_workflow(1, running=60)
    back: FakePortable | None = None
    try:
        async with fake.client(first_contact_timeout=0.2) as client:
            waiting = asyncio.create_task(wait_for_completion(client, 1, poll=POLL))
            while not fake.requests:
                await asyncio.sleep(0.01)
            await fake.close()  # the port is closed: connections are refused from now on
            await asyncio.sleep(0.8)  # 4x the first-contact tolerance
            assert not waiting.done()
            back = FakePortable(api_key=key, port=port)
            back.add_workflow(1, running=0.05)
            await back.start()
            status = await asyncio.wait_for(waiting, 5)
        assert status.disposition is Disposition.SUCCEEDED
        assert back.requests
    finally:
        await fake.close()
        if back is not None:
            await back.close()


def test_first_contact_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match="first_contact_timeout"):
        PortableClient("k", first_contact_timeout=0)
    with pytest.raises(TypeError, match="first_contact_timeout"):
        PortableClient("k", first_contact_timeout="30")  # type: ignore[arg-type]
    assert PortableClient("k").first_contact_timeout == 30.0
    assert PortableClient("k", first_contact_timeout=float("inf")).first_contact_timeout is None


def _connector_error(cls: type[aiohttp.ClientConnectorError], os_error: OSError) -> aiohttp.ClientConnectorError:
    key = SimpleNamespace(host="api.portable.io", port=443, ssl=True)
    return cls(key, os_error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (_connector_error(aiohttp.ClientConnectorError, ConnectionRefusedError(111, "refused")), "connection refused"),
        (_connector_error(aiohttp.ClientConnectorDNSError, socket.gaierror(-2, "unknown")), "host name not resolved"),
        (_connector_error(aiohttp.ClientConnectorError, socket.gaierror(-2, "unknown")), "host name not resolved"),
        (_connector_error(aiohttp.ClientConnectorSSLError, OSError(1, "handshake")), "TLS error"),
        (_connector_error(aiohttp.ClientProxyConnectionError, OSError(1, "proxy")), "proxy connection failed"),
        (aiohttp.ServerDisconnectedError(), "connection closed with no answer"),
        (aiohttp.ClientOSError(113, "no route to host"), "connection failed"),
    ],
)
def test_first_contact_names_the_cause(error: BaseException, cause: str) -> None:
    assert _connection_failure(error) == cause
