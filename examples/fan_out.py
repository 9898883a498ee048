"""Wait on many workflows at once through one client, handling each as it finishes.

python examples/fan_out.py
PORTABLE_API_KEY=... python examples/fan_out.py --real 101 102 103
"""

from __future__ import annotations

import asyncio
import contextlib

from _support import parse, poll_policy, portable

from portable_wait import PortableError, WorkflowStatus, as_completed
from portable_wait.testing import FakePortable


def setup(fake: FakePortable) -> None:
    for i, wid in enumerate(range(101, 121)):
        failed = i % 7 == 3
        fake.add_workflow(
            wid, running=0.2 + i * 0.05, outcome="FAILED" if failed else "SUCCEEDED", errors=["quota"] if failed else ()
        )


async def main() -> int:
    args = parse(__doc__ or "", list(range(101, 121)))
    failures = 0
    async with portable(args, setup) as client:
        waits = as_completed(client, args.ids, timeout=4 * 3600, poll=poll_policy(args))
        async with contextlib.aclosing(waits):
            async for workflow_id, outcome in waits:
                if isinstance(outcome, WorkflowStatus):
                    print(f"{workflow_id}: {outcome.disposition} ({outcome.records_loaded:,} records)")
                else:
                    assert isinstance(outcome, PortableError)
                    failures += 1
                    print(f"{workflow_id}: {type(outcome).__name__}: {outcome}")
    print(f"{len(args.ids) - failures} of {len(args.ids)} succeeded")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
