"""Block until workflows finish, from a plain script with no asyncio (a CI step, a cron job).

python examples/blocking_script.py
PORTABLE_API_KEY=... python examples/blocking_script.py --real 568971 568972
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from _support import require_key

from portable_wait import PollPolicy, WorkflowStatus, sync
from portable_wait.testing import FakePortable


@contextlib.contextmanager
def target(real: bool) -> Iterator[tuple[str | None, str]]:
    """Yield (api_key, base_url): the real API's (the key from PORTABLE_API_KEY), or a fake's in a thread."""
    if real:
        yield None, "https://api.portable.io"
        return
    fake = FakePortable()
    fake.add_workflow(568971, running=0.5)
    fake.add_workflow(568972, running=0.8, outcome="FAILED", errors=["Destination rejected the load"])
    with fake.run_in_thread():
        yield fake.api_key, fake.base_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("ids", nargs="*", type=int, default=[568971, 568972])
    args = parser.parse_args()
    if args.real:
        require_key()
    poll = PollPolicy() if args.real else PollPolicy(initial=0.05, maximum=0.3)
    with target(args.real) as (api_key, base_url):
        first = sync.wait_for_completion(args.ids[0], api_key=api_key, base_url=base_url, poll=poll, timeout=3600)
        print(f"{first.id}: {first.disposition}")
        results = sync.wait_for_many(
            args.ids, api_key=api_key, base_url=base_url, return_exceptions=True, poll=poll, timeout=3600
        )
    for workflow_id, outcome in results.items():
        print(f"{workflow_id}: {outcome.disposition if isinstance(outcome, WorkflowStatus) else outcome}")
    return 0 if all(isinstance(o, WorkflowStatus) for o in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
