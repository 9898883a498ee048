"""A client used from an event loop other than its own: the intended RuntimeError, never aiohttp's."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from portable_wait import PollPolicy, PortableClient, wait_for_completion
from portable_wait.testing import FakePortable

# A client left open when its loop ended leaks that loop's connection (a ResourceWarning when collected): the
# user's mistake these tests make on purpose.
LEAKS = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
STEADY = PollPolicy(initial=0.05, maximum=0.05, multiplier=1, jitter=0)
OTHER_LOOP = "a PortableClient belongs to the event loop it was first used in; create one per loop"


@pytest.fixture
def fake() -> Iterator[FakePortable]:
    server = FakePortable()
    with server.run_in_thread():
        server.add_workflow(1, running=60)
        yield server


@LEAKS[0]
@LEAKS[1]
def test_client_reused_after_its_loop_ended_says_create_one_per_loop(fake: FakePortable) -> None:
    client = PortableClient(fake.api_key, base_url=fake.base_url)
    assert asyncio.run(client.get_workflow_status(1)).id == 1
    with pytest.raises(RuntimeError, match=OTHER_LOOP):
        asyncio.run(client.get_workflow_status(1))
    with pytest.raises(RuntimeError, match=OTHER_LOOP):
        asyncio.run(wait_for_completion(client, 1, poll=STEADY, timeout=1))
    asyncio.run(client.aclose())  # from another loop, once the client's own has ended: releases, no error
    assert "closed" in repr(client)
    del client
    gc.collect()  # the leaked connection's warning, here, under this test's filters


@LEAKS[0]
@LEAKS[1]
def test_hub_reused_after_its_loop_ended_says_create_one_per_loop(fake: FakePortable) -> None:
    client = PortableClient(fake.api_key, base_url=fake.base_url)

    async def wait_briefly(c: PortableClient) -> None:
        with pytest.raises(TimeoutError):
            await wait_for_completion(c, 1, poll=STEADY, timeout=0.2)

    asyncio.run(wait_briefly(client))
    with pytest.raises(RuntimeError, match=OTHER_LOOP):
        asyncio.run(wait_for_completion(client, 1, poll=STEADY, timeout=1))
    asyncio.run(client.aclose())
    del client
    gc.collect()


async def test_aclose_from_another_running_loop_is_refused(fake: FakePortable) -> None:
    client = PortableClient(fake.api_key, base_url=fake.base_url)
    assert (await client.get_workflow_status(1)).id == 1

    def close_elsewhere() -> None:
        with pytest.raises(RuntimeError, match="close it in that loop"):
            asyncio.run(client.aclose())

    await asyncio.to_thread(close_elsewhere)
    assert (await client.get_workflow_status(1)).id == 1  # still open and usable in its own loop
    await client.aclose()
