"""Where a poll's time goes: cProfile of portable-wait's concurrency-10 loop from the overhead benchmark.

Profiles the client process only (the fake server runs in another process) over the same 3,000 requests as
``bench_overhead``, and reports each function's own time per request, so the figures read next to the overhead
table's µs per request. cProfile slows everything down several times: compare rows with each other, not with the
overhead table.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats

from . import bench_overhead
from .common import fake_server, write_section

CONCURRENCY = 10
TOP = 12


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
    lines += ["", "Command: `python -m benchmarks profile`."]
    write_section("1b-profile", "\n".join(lines))
    return rows


if __name__ == "__main__":
    run()
