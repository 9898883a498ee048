"""request_timeout against a real socket: kept by the client's one deadline timer, not by aiohttp's per-request one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from portable_wait import PortableClient, RetryPolicy, TransportError
from portable_wait.testing import FakePortable

ONE_TRY = RetryPolicy(attempts=1)


async def test_request_timeout_cuts_off_a_server_that_never_answers() -> None:
    async with FakePortable() as fake:
        fake.add_workflow(1, running=60)
        fake.add_fault("slow", requests=[1], delay=30.0)  # far beyond the pytest timeout: only ours can end it
        async with fake.client(request_timeout=0.2, retry=ONE_TRY) as client:
            with pytest.raises(TransportError, match=r"timed out after 0\.2 s") as info:
                await client.get_workflow_status(1)
            assert info.value.transient
            assert client.stats().requests_by_status == {"timeout": 1}
            assert (await client.get_workflow_status(1)).id == 1  # the client goes on


@pytest.fixture
async def stalling_server() -> AsyncIterator[str]:
    """A server that sends a status's headers and its first bytes, then nothing more."""

    async def status(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "200"})
        await response.prepare(request)
        await response.write(b'{"id": 1, "lifecycle": ')
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/v2/workflows/{id}/status", status)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_request_timeout_covers_a_body_that_stalls(stalling_server: str) -> None:
    async with PortableClient("k" * 16, base_url=stalling_server, request_timeout=0.2, retry=ONE_TRY) as client:
        with pytest.raises(TransportError, match=r"timed out after 0\.2 s"):
            await client.get_workflow_status(1)


async def test_cancelling_a_request_is_not_taken_for_its_timeout() -> None:
    async with FakePortable() as fake:
        fake.add_workflow(1, running=60)
        fake.add_fault("slow", requests=[1], delay=30.0)
        async with fake.client(request_timeout=0.2, retry=ONE_TRY) as client:
            task = asyncio.create_task(client.get_workflow_status(1))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.stats().requests_by_status == {"CancelledError": 1}
            assert len(client._deadlines) == 0


async def test_an_outer_timeout_still_fires_around_a_request() -> None:
    # asyncio.wait_for's cancellation must reach the caller as its own timeout, whatever the request's deadline.
    async with FakePortable() as fake:
        fake.add_workflow(1, running=60)
        fake.add_fault("slow", requests=[1], delay=30.0)
        async with fake.client(request_timeout=10.0, retry=ONE_TRY) as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get_workflow_status(1), 0.1)


@pytest.fixture
def never_accepting_port() -> Iterator[int]:
    """A listener whose accept queue is full and never drained: a connection to it hangs in connect()."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


async def test_request_timeout_still_holds_for_requests_in_flight_when_the_client_closes(
    never_accepting_port: int,
) -> None:
    # Closing the session aborts connected requests only: one still connecting must keep its deadline, or it
    # hangs for the operating system's connect timeout (minutes).
    client = PortableClient("k" * 16, base_url=f"http://127.0.0.1:{never_accepting_port}", request_timeout=0.3)
    await client.__aenter__()
    request = asyncio.create_task(client.get_workflow_status(1))
    await asyncio.sleep(0.1)
    await client.aclose()
    with pytest.raises((TransportError, RuntimeError)):
        await asyncio.wait_for(request, 10)
    assert len(client._deadlines) == 0


async def test_requests_queued_for_a_slot_when_the_client_closes_get_the_clients_error() -> None:
    async with FakePortable() as fake:
        fake.add_workflow(1, running=60)
        fake.add_fault("slow", requests=[1], delay=0.3)
        client = fake.client(max_concurrency=1, retry=ONE_TRY)
        async with client:
            first = asyncio.create_task(client.get_workflow_status(1))
            await asyncio.sleep(0.05)
            queued = asyncio.create_task(client.get_workflow_status(1))  # waits for the one slot
            await asyncio.sleep(0.05)
        # Closing ends the request in flight, and the queued one never leaves: the library's own words, not
        # aiohttp's "Session is closed".
        with pytest.raises(RuntimeError, match="PortableClient is closed; create a new one"):
            await asyncio.wait_for(queued, 5)
        await asyncio.gather(first, return_exceptions=True)
        assert client.request_count == 1
