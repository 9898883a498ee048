"""Wait for one workflow from an async app.

python examples/wait_one.py                 # against an embedded fake Portable
PORTABLE_API_KEY=... python examples/wait_one.py --real 568971
"""

from __future__ import annotations

import asyncio

from _support import parse, poll_policy, portable

from portable_wait import PollEvent, WorkflowFailedError, wait_for_completion


def show(event: PollEvent) -> None:
    if event.status is not None:
        print(f"  poll {event.attempt}: {event.status.lifecycle} ({event.status.records_loaded:,} records loaded)")


async def main() -> int:
    args = parse(__doc__ or "", [568971])
    workflow_id = args.ids[0]
    async with portable(args, lambda fake: fake.add_workflow(workflow_id, pending=0.2, running=0.8)) as client:
        try:
            status = await wait_for_completion(client, workflow_id, timeout=3600, poll=poll_policy(args), on_poll=show)
        except WorkflowFailedError as error:
            print(f"workflow {error.workflow_id} failed: {error.status.all_errors()}")
            return 1
    print(f"workflow {status.id}: {status.disposition}, completed at {status.completed_at}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
