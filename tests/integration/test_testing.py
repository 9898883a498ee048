"""The fake Portable server itself: what users test their code against must be right."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import aiohttp
import pytest

from portable_wait import PortableClient, RetryPolicy
from portable_wait.testing import FakePortable

NO_RETRY = RetryPolicy(attempts=1)


async def get(fake: FakePortable, wid: int | str, key: str | None = None) -> tuple[int, dict[str, object], str]:
    headers = {"Authorization": f"Bearer {key or fake.api_key}"}
    url = f"{fake.base_url}/v2/workflows/{wid}/status"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        text = await response.text()
        body = json.loads(text) if response.content_type == "application/json" else {}
        return response.status, body, response.headers.get("Retry-After", "")


async def test_fake_serves_the_spec_shape(fake_portable: FakePortable) -> None:
    # Each request lands in its phase with 0.3 s to spare, however late a loaded machine runs it.
    fake_portable.add_workflow(1, pending=0.3, running=0.6, resources={"users": 100})
    code, body, _ = await get(fake_portable, 1)
    assert code == 200
    assert set(body) == {"id", "lifecycle", "disposition", "resources", "errors", "completedAt"}
    assert body["lifecycle"] == "PENDING" and body["completedAt"] is None
    await asyncio.sleep(0.3)
    _, body, _ = await get(fake_portable, 1)
    assert body["lifecycle"] == "RUNNING"
    assert 0 <= body["resources"][0]["extracted"] <= 100  # type: ignore[index]
    await asyncio.sleep(0.6)
    _, body, _ = await get(fake_portable, 1)
    assert body["lifecycle"] == "NOT_RUNNING" and body["disposition"] == "SUCCEEDED"
    assert datetime.fromisoformat(str(body["completedAt"]).replace("Z", "+00:00")) <= datetime.now(timezone.utc)


async def test_fake_auth_404_403(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1)
    fake_portable.add_workflow(2, forbidden=True)
    assert (await get(fake_portable, 1, key="wrong"))[:2] == (401, {"message": "Unauthorized"})
    assert (await get(fake_portable, 99))[0] == 404
    assert (await get(fake_portable, "abc"))[0] == 404
    assert (await get(fake_portable, 2))[0] == 403
    assert [r.status for r in fake_portable.requests] == [401, 404, 404, 403]


async def test_fake_trigger_keeps_previous_result_until_run_starts(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1, start=False, previous="FAILED")
    _, body, _ = await get(fake_portable, 1)
    assert (body["lifecycle"], body["disposition"]) == ("NOT_RUNNING", "FAILED")
    fake_portable.trigger(1, running=10, shows_after=0.1)
    _, body, _ = await get(fake_portable, 1)
    assert (body["lifecycle"], body["disposition"]) == ("NOT_RUNNING", "FAILED")  # the new run is not visible yet
    await asyncio.sleep(0.12)
    _, body, _ = await get(fake_portable, 1)
    assert body["lifecycle"] == "RUNNING"
    fake_portable.finish(1, "SUCCEEDED")
    _, body, _ = await get(fake_portable, 1)
    assert body["disposition"] == "SUCCEEDED"


async def test_fake_never_ran(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1, start=False)
    _, body, _ = await get(fake_portable, 1)
    assert body == {
        "id": 1,
        "lifecycle": "NOT_RUNNING",
        "disposition": "NONE",
        "resources": [],
        "errors": [],
        "completedAt": None,
    }


async def test_fake_faults_by_request_number_workflow_and_times(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1, running=60)
    fake_portable.add_workflow(2, running=60)
    fake_portable.add_fault("500", requests=[2])
    fake_portable.add_fault("429", workflow_id=2, requests=[1], retry_after=7)
    fake_portable.add_fault("502", workflow_id=1, times=1)
    statuses = []
    for wid in (1, 2, 1, 2):
        code, _, retry_after = await get(fake_portable, wid)
        statuses.append((code, retry_after))
    assert statuses == [(502, ""), (500, ""), (200, ""), (200, "")]
    assert [r.fault for r in fake_portable.requests] == ["502", "500", None, None]
    code, _, retry_after = await get(fake_portable, 2)
    assert (code, retry_after) == (200, "")


async def test_fake_429_with_http_date(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1)
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    fake_portable.add_fault("429", retry_after=when)
    code, _, retry_after = await get(fake_portable, 1)
    assert (code, retry_after) == (429, when)


@pytest.mark.parametrize(
    ("kind", "exception"),
    [("truncated", aiohttp.ClientPayloadError), ("drop", aiohttp.ServerDisconnectedError)],
)
async def test_fake_connection_faults(fake_portable: FakePortable, kind: str, exception: type[Exception]) -> None:
    fake_portable.add_workflow(1)
    fake_portable.add_fault(kind)
    with pytest.raises(exception):
        await get(fake_portable, 1)


async def test_fake_html_and_slow(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1)
    fake_portable.add_fault("html", requests=[1])
    fake_portable.add_fault("slow", requests=[2], delay=0.2)
    code, body, _ = await get(fake_portable, 1)
    assert code == 200 and body == {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    code, body, _ = await get(fake_portable, 1)
    assert code == 200 and body["id"] == 1
    assert loop.time() - start >= 0.19


async def test_fake_random_faults_are_seeded() -> None:
    counts = []
    for _ in range(2):
        async with FakePortable(seed=42) as fake:
            fake.add_workflow(1, running=60)
            fake.add_fault("503", rate=0.3)
            for _ in range(50):
                await get(fake, 1)
            counts.append([r.status for r in fake.requests])
    assert counts[0] == counts[1]
    assert 5 < counts[0].count(503) < 30


async def test_fake_outage_window(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1, running=60)
    fake_portable.outage(fake_portable.elapsed() + 0.1, 0.1)
    assert (await get(fake_portable, 1))[0] == 200
    await asyncio.sleep(0.12)
    assert (await get(fake_portable, 1))[0] == 503
    await asyncio.sleep(0.12)
    assert (await get(fake_portable, 1))[0] == 200


async def test_fake_enforces_rate_limit() -> None:
    async with FakePortable(rate_limit=5) as fake:
        fake.add_workflow(1, running=60)
        codes = [(await get(fake, 1))[0] for _ in range(8)]
    assert codes.count(200) == 5 and codes[5:] == [429, 429, 429]


def test_fake_rejects_bad_scripting() -> None:
    fake = FakePortable()
    with pytest.raises(ValueError, match="fault kind"):
        fake.add_fault("teapot")
    with pytest.raises(ValueError, match="outcome"):
        fake.add_workflow(1, outcome="MAYBE")
    fake.add_workflow(2, start=False)
    with pytest.raises(ValueError, match="no run"):
        fake.finish(2)


async def test_fake_fixture_client_is_bound(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    fake_portable.add_workflow(3, running=60)
    assert portable_client.base_url == fake_portable.base_url
    assert (await portable_client.get_workflow_status(3)).is_running


async def test_fake_sees_user_agent_and_bearer_only_on_its_host(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(1)
    fake_portable.add_fault("redirect", requests=[1])
    async with fake_portable.client(retry=NO_RETRY) as client:
        with pytest.raises(Exception, match="not followed"):
            await client.get_workflow_status(1)
    assert len(fake_portable.requests) == 1
    assert fake_portable.requests[0].user_agent.startswith("portable-wait/")
