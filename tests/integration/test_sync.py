"""The blocking API, against the fake server served from a background thread."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from portable_wait import Disposition, WorkflowFailedError, WorkflowNotFoundError, WorkflowStatus
from portable_wait import sync as pw_sync
from portable_wait.testing import FAST_POLL, FAST_RETRY, FakePortable

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup


@pytest.fixture
def threaded() -> Iterator[FakePortable]:
    fake = FakePortable()
    with fake.run_in_thread():
        yield fake


def test_sync_wait_for_completion_blocks_until_done(threaded: FakePortable) -> None:
    threaded.add_workflow(1, running=0.1)
    status = pw_sync.wait_for_completion(
        1, api_key=threaded.api_key, base_url=threaded.base_url, poll=FAST_POLL, retry=FAST_RETRY
    )
    assert status.disposition is Disposition.SUCCEEDED


def test_sync_reads_key_from_environment(threaded: FakePortable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTABLE_API_KEY", threaded.api_key)
    threaded.add_workflow(1, running=0.05, outcome="FAILED", errors=["bad"])
    with pytest.raises(WorkflowFailedError, match="bad"):
        pw_sync.wait_for_completion(1, base_url=threaded.base_url, poll=FAST_POLL)


def test_sync_wait_for_many(threaded: FakePortable) -> None:
    threaded.add_workflow(1, running=0.05)
    threaded.add_workflow(2, running=0.05, outcome="FAILED")
    key, url = threaded.api_key, threaded.base_url
    results = pw_sync.wait_for_many(
        [1, 2, 3],
        api_key=key,
        base_url=url,
        retry=FAST_RETRY,
        poll=FAST_POLL,
        return_exceptions=True,
        max_concurrency=2,
    )
    assert isinstance(results[1], WorkflowStatus)
    assert isinstance(results[2], WorkflowFailedError)
    assert isinstance(results[3], WorkflowNotFoundError)
    with pytest.raises(ExceptionGroup):
        pw_sync.wait_for_many([1, 2], api_key=key, base_url=url, retry=FAST_RETRY, poll=FAST_POLL)


def test_sync_get_workflow_status(threaded: FakePortable) -> None:
    threaded.add_workflow(1, running=60)
    status = pw_sync.get_workflow_status(1, api_key=threaded.api_key, base_url=threaded.base_url)
    assert status.is_running


def test_sync_validates_before_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTABLE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="PORTABLE_API_KEY"):
        pw_sync.wait_for_completion(1)
    with pytest.raises(TypeError):
        pw_sync.wait_for_completion("1", api_key="k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword 'nonsense'"):
        pw_sync.wait_for_many([1], api_key="k", nonsense=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="did you mean 'timeout'"):
        pw_sync.wait_for_completion(1, api_key="k", timout=1)  # type: ignore[call-arg]


async def test_sync_refuses_to_run_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match=r"running event loop.*await portable_wait\.wait_for_completion"):
        pw_sync.wait_for_completion(1, api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="running event loop"):
        pw_sync.wait_for_many([1], api_key="k", base_url="http://127.0.0.1:9")
    await asyncio.sleep(0)
