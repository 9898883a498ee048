"""wait_for_completion against the fake server on 127.0.0.1: what the shared suite in test_wait_semantics.py does not
cover (answer shapes, clock skew, a 429 in the poll schedule, argument checks, leftover tasks)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from portable_wait import (
    Disposition,
    PortableClient,
    RetryPolicy,
    wait_for_completion,
)
from portable_wait.testing import FAST_POLL, FakePortable


async def test_wait_accepts_lowercase_answers(portable_client: PortableClient, fake_portable: FakePortable) -> None:
    fake_portable.lowercase = True
    fake_portable.add_workflow(1, running=0.05)
    status = await wait_for_completion(portable_client, 1, poll=FAST_POLL)
    assert status.disposition is Disposition.SUCCEEDED


async def test_wait_never_ran_returns_none_disposition(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(3, start=False)
    status = await wait_for_completion(portable_client, 3, poll=FAST_POLL)
    assert status.disposition is Disposition.NONE
    assert len(fake_portable.requests) == 1


async def test_wait_after_trusts_a_seen_running_state_over_clock_skew(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    """A NOT_RUNNING seen after RUNNING is final even if the server's completedAt is behind our clock."""
    skewed = "2000-01-01T00:00:00Z"
    fake_portable.add_workflow(
        8,
        script=[
            {"lifecycle": "RUNNING", "disposition": "NONE"},
            {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED", "completedAt": skewed},
        ],
    )
    status = await wait_for_completion(portable_client, 8, poll=FAST_POLL, after=datetime.now(timezone.utc))
    assert status.disposition is Disposition.SUCCEEDED


async def test_wait_unknown_lifecycle_keeps_polling(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(
        10,
        script=[
            {"lifecycle": "QUEUED_FOR_CAPACITY", "disposition": "NONE"},
            {"lifecycle": "QUEUED_FOR_CAPACITY", "disposition": "NONE"},
            {"lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"},
        ],
    )
    status = await wait_for_completion(portable_client, 10, poll=FAST_POLL)
    assert status.disposition is Disposition.SUCCEEDED
    assert len(fake_portable.requests_for(10)) == 3


async def test_wait_unknown_final_disposition_is_returned_not_raised(
    fake_portable: FakePortable, portable_client: PortableClient
) -> None:
    fake_portable.add_workflow(11, script=[{"lifecycle": "NOT_RUNNING", "disposition": "PARTIALLY_SUCCEEDED"}])
    status = await wait_for_completion(portable_client, 11, poll=FAST_POLL)
    assert status.disposition is Disposition.UNKNOWN


async def test_wait_poll_loop_honours_retry_after(fake_portable: FakePortable) -> None:
    fake_portable.add_workflow(16, running=0.05)
    fake_portable.add_fault("429", retry_after=0.3, times=1)
    async with fake_portable.client(retry=RetryPolicy(attempts=1)) as client:
        await wait_for_completion(client, 16, poll=FAST_POLL)
    times = [r.time for r in fake_portable.requests]
    assert fake_portable.requests[0].status == 429
    assert times[1] - times[0] >= 0.29


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"workflow_id": True}, TypeError),
        ({"workflow_id": "568971"}, TypeError),
        ({"workflow_id": 1.0}, TypeError),
        ({"workflow_id": 0}, ValueError),
        ({"workflow_id": -5}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": "10"}, TypeError),
        ({"poll": {"initial": 1}}, TypeError),
        ({"after": datetime(2024, 1, 1)}, ValueError),
        ({"after": "2024-01-01"}, TypeError),
        ({"on_poll": "print"}, TypeError),
        ({"raise_on_failure": "yes"}, TypeError),
    ],
)
async def test_wait_validates_arguments_before_any_request(
    fake_portable: FakePortable, portable_client: PortableClient, kwargs: dict[str, object], error: type[Exception]
) -> None:
    fake_portable.add_workflow(1)
    args: dict[str, object] = {"workflow_id": 1, **kwargs}
    wid = args.pop("workflow_id")
    with pytest.raises(error):
        await wait_for_completion(portable_client, wid, **args)  # type: ignore[arg-type]
    assert fake_portable.requests == []
