"""Shared plumbing for the examples: the fake Portable server by default, the real API with --real."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable

from portable_wait import PollPolicy, PortableClient
from portable_wait.testing import FakePortable

# Quick polls against the fake; the library's defaults (2 s growing to 30 s) against the real API.
DEMO_POLL = PollPolicy(initial=0.05, maximum=0.3)


def parse(description: str, default_ids: list[int]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--real", action="store_true", help="use the real API (needs PORTABLE_API_KEY)")
    parser.add_argument("ids", nargs="*", type=int, default=default_ids, help="workflow IDs")
    args = parser.parse_args()
    if args.real:
        require_key()
    return args


def require_key() -> None:
    """Exit 2 with one line, not a traceback, when --real is asked for without PORTABLE_API_KEY."""
    if not os.environ.get("PORTABLE_API_KEY", "").strip():
        print("--real needs your API key in PORTABLE_API_KEY (export PORTABLE_API_KEY=...)", file=sys.stderr)
        raise SystemExit(2)


def poll_policy(args: argparse.Namespace) -> PollPolicy:
    return PollPolicy() if args.real else DEMO_POLL


@contextlib.asynccontextmanager
async def portable(args: argparse.Namespace, setup: Callable[[FakePortable], object]) -> AsyncIterator[PortableClient]:
    """Yield a client: for the real API with --real, else for a fake server set up by ``setup``."""
    if args.real:
        async with PortableClient() as client:  # the key comes from PORTABLE_API_KEY
            yield client
        return
    async with FakePortable() as fake:
        setup(fake)
        async with fake.client() as client:
            yield client
