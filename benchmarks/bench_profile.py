"""Where a poll's time goes: cProfile of portable-wait's concurrency-10 loop from the overhead benchmark.

Profiles the client process only (the fake server runs in another process) over the same 3,000 requests as
``bench_overhead``, and reports each function's own time per request, so the figures read next to the overhead
table's µs per request. cProfile slows everything down several times: compare rows with each other, not with the
overhead table.

Then, without the profiler, the client's own work per request: `get_workflow_status` and the bare loop's body
(``session.get``, read, ``json.loads``) against a session that answers at once with a canned status, no network
and no server, so that what remains is the code around the request, not aiohttp's or the kernel's.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from portable_wait import PortableClient

from . import bench_overhead
from .common import fake_server, write_section

CONCURRENCY = 10
TOP = 12
CANNED_CALLS = 30_000
CANNED_ROUNDS = 7
CANNED_BODY = json.dumps(
    {
        "id": 7,
        "lifecycle": "RUNNING",
        "disposition": "NONE",
        "resources": [{"name": "users", "extracted": 0, "analyzed": 0, "loaded": 0, "errors": []}],
        "errors": [],
        "completedAt": None,
    }
).encode()


class _CannedResponse:
    """What the fake server answers (section 1's body and headers), without a socket."""

    status = 200
    content_length = len(CANNED_BODY)
    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(CANNED_BODY)),
                "Date": "Sun, 29 Nov 2026 09:00:00 GMT",
                "Server": "Python/3.11 aiohttp/3.14.5",
            }
        )
    )

    async def read(self) -> bytes:
        return CANNED_BODY

    async def __aenter__(self) -> _CannedResponse:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


class _CannedSession:
    def get(self, url: str, **kwargs: Any) -> _CannedResponse:
        return _CANNED

    async def close(self) -> None:
        return None


_CANNED = _CannedResponse()


async def _canned() -> tuple[float, float]:
    """Return the bare loop's and the client's CPU µs per call on a canned answer (best of the rounds)."""
    session = _CannedSession()

    async def bare(wid: int) -> None:
        async with session.get(f"http://127.0.0.1:1/v2/workflows/{wid}/status") as response:
            json.loads(await response.read())

    async with PortableClient("k" * 20, base_url="http://127.0.0.1:1") as client:
        real = client._ensure_session()
        client._session = session  # type: ignore[assignment]
        best: dict[str, float] = {}
        try:
            contenders: dict[str, Callable[[int], Awaitable[object]]] = {
                "bare": bare,
                "ours": client.get_workflow_status,
            }
            for _ in range(CANNED_ROUNDS):
                for name, call in contenders.items():
                    cpu = time.process_time()
                    for _ in range(CANNED_CALLS):
                        await call(7)
                    spent = (time.process_time() - cpu) / CANNED_CALLS * 1e6
                    best[name] = min(best.get(name, spent), spent)
        finally:
            client._session = real
    return best["bare"], best["ours"]


def _where(filename: str, line: int) -> str:
    if filename == "~":
        return "built-in"
    for marker in ("portable_wait/", "aiohttp/", "pydantic", "asyncio/", "yarl/", "multidict/"):
        index = filename.find(marker)
        if index >= 0:
            return f"{filename[index:]}:{line}"
    return f"{filename.rsplit('/', 1)[-1]}:{line}"


def run() -> list[tuple[str, float, float]]:
    with fake_server("--running", "100") as server:
        asyncio.run(bench_overhead.ours(server.base_url, server.api_key, CONCURRENCY))  # warm up
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(bench_overhead.ours(server.base_url, server.api_key, CONCURRENCY))
        profiler.disable()
    requests = bench_overhead.REQUESTS + 50  # the timed requests and drive()'s warm-up
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    rows: list[tuple[str, float, float]] = []
    for (filename, line, name), (_cc, _nc, tottime, cumtime, _callers) in raw.items():
        rows.append((f"`{name}` ({_where(filename, line)})", tottime / requests * 1e6, cumtime / requests * 1e6))
    rows.sort(key=lambda r: r[1], reverse=True)
    total = sum(r[1] for r in rows)
    ours = sum(r[1] for r in rows if "portable_wait/" in r[0])
    lines = [
        "## 1b. Per-poll profile",
        "",
        f"cProfile of `client.get_workflow_status` at concurrency {CONCURRENCY}, {requests:,} requests against "
        "the fake server in another process; own time per request of the functions that take the most, under "
        f"the profiler (which inflates every call). In all, {total:,.0f} µs a request under the profiler, "
        f"{ours:,.0f} µs of it ({ours / total:.0%}) in portable_wait's own functions. A run of its own (see the "
        "stamp), not part of section 1's: compare its rows with each other, not with that table.",
        "",
        "| function | own µs/request | with callees µs/request |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {own:.1f} | {cum:.1f} |" for name, own, cum in rows[:TOP]]
    bare, ours_canned = asyncio.run(_canned())
    lines += [
        "",
        "Without the profiler, on a canned answer (the same body and headers from a session that answers at once: "
        "no network, no server, so no aiohttp or kernel work), the best of "
        f"{CANNED_ROUNDS} rounds of {CANNED_CALLS:,} calls: the bare loop's body (`session.get`, read, "
        f"`json.loads`) takes {bare:.1f} µs of CPU and `client.get_workflow_status` {ours_canned:.1f} µs, so the "
        f"client's own work costs {ours_canned - bare:.1f} µs a request more than the bare loop's.",
    ]
    lines += ["", "Command: `python -m benchmarks profile`."]
    write_section("1b-profile", "\n".join(lines))
    return rows


if __name__ == "__main__":
    run()
