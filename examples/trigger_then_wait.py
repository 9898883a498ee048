"""Trigger a sync, then wait for *that* run, not the previous one (the ``after=`` argument).

Right after a trigger, the status endpoint can still show the previous run as NOT_RUNNING / SUCCEEDED. A loop
that polls "until NOT_RUNNING" returns at once with the old result. With ``after=`` read just before the trigger,
the wait only accepts a run that completed after it (compared on Portable's clock), or one it has seen PENDING or
RUNNING itself. Read it before, not after: a run that fails within a second is over before the first poll.

    python examples/trigger_then_wait.py
    PORTABLE_API_KEY=... python examples/trigger_then_wait.py --real 568971   # then start the sync in Portable
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from _support import parse, poll_policy, portable

from portable_wait import Disposition, wait_for_completion
from portable_wait.testing import FakePortable

fake_server: FakePortable | None = None


def setup(fake: FakePortable) -> None:
    global fake_server
    fake_server = fake
    # The last run succeeded an hour ago; the run we are about to trigger will fail.
    fake.add_workflow(568971, start=False, previous="SUCCEEDED")


async def trigger_sync(workflow_id: int) -> None:
    """Stand-in for however you start the sync (Portable's UI, its API, a scheduler)."""
    if fake_server is None:
        print(f"start workflow {workflow_id} in Portable now; waiting for the run that starts after this moment")
        return
    # As for real, the new run shows up a moment after the trigger; until then the old result is served.
    fake_server.trigger(
        568971, pending=0.2, running=0.5, outcome="FAILED", errors=["Source credentials expired"], shows_after=0.3
    )


async def main() -> int:
    args = parse(__doc__ or "", [568971])
    workflow_id = args.ids[0]
    async with portable(args, setup) as client:
        triggered_at = datetime.now(timezone.utc)
        trigger = asyncio.create_task(trigger_sync(workflow_id))
        status = await wait_for_completion(
            client, workflow_id, after=triggered_at, raise_on_failure=False, poll=poll_policy(args), timeout=3600
        )
        await trigger
    print(f"the run triggered at {triggered_at:%H:%M:%S} ended {status.disposition}: {list(status.errors)}")
    if not args.real:
        # Without after=, the same wait would have returned the previous run's SUCCEEDED at once.
        assert status.disposition is Disposition.FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
