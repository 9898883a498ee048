"""Slots: the client's request slots, a cheaper asyncio.Semaphore that serves its queue in order."""

from __future__ import annotations

import asyncio
import random

import pytest

from portable_wait._slots import Slots


async def _hold(slots: Slots, name: str, log: list[str], release: asyncio.Event) -> None:
    if not slots.try_take():
        await slots.take()
    log.append(name)
    try:
        await release.wait()
    finally:
        slots.give()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_slots_refuse_a_limit_under_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Slots(0)


async def test_slots_take_free_slots_at_once_and_queue_the_rest_in_order() -> None:
    slots = Slots(2)
    log: list[str] = []
    releases = {name: asyncio.Event() for name in "abcde"}
    tasks = [asyncio.create_task(_hold(slots, name, log, releases[name])) for name in "abcde"]
    await _settle()
    assert log == ["a", "b"] and slots.free == 0 and slots.queued() == 3
    assert not slots.try_take()  # nothing free: a newcomer queues
    releases["b"].set()
    await _settle()
    assert log == ["a", "b", "c"]
    releases["a"].set()
    await _settle()
    assert log == ["a", "b", "c", "d"]
    for event in releases.values():
        event.set()
    await asyncio.gather(*tasks)
    assert log == list("abcde") and slots.free == 2 and slots.queued() == 0


async def test_slots_a_newcomer_never_overtakes_the_queue() -> None:
    slots = Slots(1)
    assert slots.try_take()
    queued = asyncio.create_task(slots.take())
    await _settle()
    slots.give()  # handed straight to the queued caller, not left free for a newcomer
    assert not slots.try_take()
    await queued
    assert slots.free == 0
    slots.give()
    assert slots.free == 1


async def test_slots_a_caller_cancelled_while_queued_leaves_the_queue() -> None:
    slots = Slots(1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await _settle()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert slots.queued() == 1
    slots.give()
    await second  # the slot skips the cancelled caller
    slots.give()
    assert slots.free == 1 and slots.queued() == 0


async def test_slots_a_caller_cancelled_as_it_was_handed_a_slot_hands_it_on() -> None:
    slots = Slots(1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await _settle()
    slots.give()  # handed to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot went on to `second`, not lost
    assert slots.free == 0
    slots.give()
    assert slots.free == 1


async def test_slots_never_hold_more_than_the_limit_under_random_cancellation() -> None:
    rng = random.Random(7)
    slots = Slots(3)
    holding = 0
    most = 0

    async def worker() -> None:
        nonlocal holding, most
        for _ in range(20):
            if not slots.try_take():
                await slots.take()
            holding += 1
            most = max(most, holding)
            try:
                await asyncio.sleep(rng.random() / 1000)
            finally:
                holding -= 1
                slots.give()

    tasks = [asyncio.create_task(worker()) for _ in range(12)]
    for _ in range(30):
        await asyncio.sleep(rng.random() / 500)
        rng.choice(tasks).cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert most == 3  # the bound held, and was reached
    assert slots.free == 3 and slots.queued() == 0  # every slot came back
