"""Limits that protect the client from a server (or a proxy) that misbehaves: the body size cap."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from portable_wait import Disposition, InvalidResponseError, PortableClient, RetryPolicy
from portable_wait._config import MAX_BODY_BYTES

KEY = "k" * 24
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def _status(wid: int, padding: int = 0) -> bytes:
    body = {"id": wid, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "pad": "x" * padding}
    return json.dumps(body).encode()


async def _endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    try:
        for _ in range(10 * MAX_BODY_BYTES // len(chunk)):  # ten times the cap: the client must stop first
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _fixed(body: bytes, *, length: bool = True, encoding: str = "") -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if encoding:
            head += b"Content-Encoding: %s\r\n" % encoding.encode()
        head += b"Content-Length: %d\r\n\r\n" % len(body) if length else b"Connection: close\r\n\r\n"
        try:
            writer.write(head + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(_endless_chunked, id="endless-chunked"),
        pytest.param(_fixed(_status(1, 2 * MAX_BODY_BYTES)), id="content-length-over-the-cap"),
        pytest.param(_fixed(_status(1, 2 * MAX_BODY_BYTES), length=False), id="until-close-over-the-cap"),
        # A few KB on the wire with a Content-Length well under the cap, 20 MiB once inflated: the cap is on
        # what the client would hold, not on what crossed the network.
        pytest.param(_fixed(gzip.compress(_status(1, 20 * MAX_BODY_BYTES)), encoding="gzip"), id="gzip-bomb"),
    ],
)
async def test_client_body_over_the_cap_is_a_transient_invalid_response(handler: Handler) -> None:
    async with _serve(handler) as url, PortableClient(KEY, base_url=url, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(InvalidResponseError, match=f"longer than {MAX_BODY_BYTES:,} bytes") as info:
            await asyncio.wait_for(client.get_workflow_status(1), 10)
    assert info.value.transient
    assert len(str(info.value)) < 300  # names the limit; holds none of the body


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
async def test_client_body_just_under_the_cap_is_read(length: bool) -> None:
    body = _status(1)
    body = _status(1, MAX_BODY_BYTES - len(body))
    assert len(body) == MAX_BODY_BYTES
    async with (
        _serve(_fixed(body, length=length)) as url,
        PortableClient(KEY, base_url=url, retry=RetryPolicy(attempts=1)) as client,
    ):
        status = await asyncio.wait_for(client.get_workflow_status(1), 10)
    assert status.disposition is Disposition.SUCCEEDED


async def test_client_reads_a_compressed_body_under_the_cap() -> None:
    body = gzip.compress(_status(1, 1000))
    async with (
        _serve(_fixed(body, encoding="gzip")) as url,
        PortableClient(KEY, base_url=url, retry=RetryPolicy(attempts=1)) as client,
    ):
        status = await asyncio.wait_for(client.get_workflow_status(1), 10)
    assert status.disposition is Disposition.SUCCEEDED
