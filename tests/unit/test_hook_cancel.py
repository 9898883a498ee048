"""An on_poll hook's own CancelledError is a hook error; a cancellation of the wait running it is not. No sockets."""

from __future__ import annotations

import asyncio
import logging

import pytest

from portable_wait import PollEvent, _polling
from portable_wait._polling import WaitOptions, WaitState, _await_hook_in_task, _HookCancelledError


async def _raises_its_own_cancelled_error() -> None:
    victim = asyncio.ensure_future(asyncio.sleep(10))
    victim.cancel()
    await victim


@pytest.mark.parametrize("sync", [False, True])
async def test_emit_logs_a_hooks_own_cancelled_error(sync: bool, caplog: pytest.LogCaptureFixture) -> None:
    def sync_hook(event: PollEvent) -> None:
        raise asyncio.CancelledError

    async def async_hook(event: PollEvent) -> None:
        await _raises_its_own_cancelled_error()

    state = WaitState(3, WaitOptions.build(on_poll=sync_hook if sync else async_hook), 0.0)
    with caplog.at_level(logging.ERROR, logger="portable_wait"):
        await state.emit(1.0, None, 1.0)  # returns: the hook's error is logged, not raised
    assert "on_poll hook raised" in caplog.text and "workflow 3" in caplog.text


@pytest.mark.parametrize("path", ["this Python's", "Python 3.10's"])
async def test_emit_names_a_hooks_own_cancelled_error_with_its_traceback(
    path: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "Python 3.10's":
        monkeypatch.setattr(_polling, "_await_hook", _await_hook_in_task)

    async def async_hook(event: PollEvent) -> None:
        await _raises_its_own_cancelled_error()

    state = WaitState(3, WaitOptions.build(on_poll=async_hook), 0.0)
    with caplog.at_level(logging.ERROR, logger="portable_wait"):
        await state.emit(1.0, None, 1.0)
    assert "on_poll hook raised CancelledError for workflow 3; ignored" in caplog.text
    assert "in _raises_its_own_cancelled_error" in caplog.text  # where the hook went wrong


async def test_emit_lets_a_cancellation_of_the_wait_through() -> None:
    started = asyncio.Event()

    async def slow_hook(event: PollEvent) -> None:
        started.set()
        await asyncio.sleep(10)

    state = WaitState(3, WaitOptions.build(on_poll=slow_hook), 0.0)
    task = asyncio.create_task(state.emit(1.0, None, 1.0))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_await_hook_in_task_tells_the_two_cancellations_apart() -> None:
    """The Python 3.10 path, which has no Task.cancelling(): tested here on any version."""
    with pytest.raises(_HookCancelledError):
        await _await_hook_in_task(_raises_its_own_cancelled_error())
    inner_started = asyncio.Event()
    inner_cancelled = asyncio.Event()

    async def slow() -> None:
        inner_started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            inner_cancelled.set()
            raise

    outer = asyncio.create_task(_await_hook_in_task(slow()))
    await inner_started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.wait_for(inner_cancelled.wait(), 1)
    await asyncio.wait_for(_await_hook_in_task(asyncio.sleep(0)), 1)  # a plain hook just completes
