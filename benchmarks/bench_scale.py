"""Scale: N concurrent waiters on one client. Memory per waiter, event-loop lag, and the time from the last
workflow's completion to ``wait_for_many`` returning.

Every workflow stays RUNNING while memory and lag are measured; then the server finishes them all at once.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time

import aiohttp

from portable_wait import PollPolicy, PortableClient, wait_for_many

from .common import fake_server, percentile, write_section

SIZES = (10_000, 100_000)
POLL = PollPolicy(initial=15.0, maximum=15.0, multiplier=1.0, jitter=0.5, outage_tolerance=600)
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


async def lag_probe(samples: list[float], stop: asyncio.Event, interval: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(interval)
        samples.append(loop.time() - start - interval)


async def measure(base_url: str, key: str, control: str, count: int) -> dict[str, float]:
    async with PortableClient(key, base_url=base_url, max_concurrency=50) as client, aiohttp.ClientSession() as ctl:
        await client.get_workflow_status(1)  # warm: session, pool, imports
        gc.collect()
        before = rss()
        started = time.perf_counter()
        task = asyncio.create_task(wait_for_many(client, range(1, count + 1), poll=POLL))
        while client.request_count < count + 1:
            await asyncio.sleep(0.05)
        first_round = time.perf_counter() - started
        gc.collect()
        after = rss()
        lag: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(lag_probe(lag, stop))
        await asyncio.sleep(5.0)  # waiters sleeping, some polling: the steady state
        stop.set()
        await probe
        async with ctl.get(control, params={"do": "finish", "first": "1", "last": str(count)}) as response:
            response.raise_for_status()
        finished = time.perf_counter()
        results = await task
        returned = time.perf_counter() - finished
        assert len(results) == count
        return {
            "count": count,
            "kib_per_waiter": (after - before) / count / 1024,
            "first_round_s": first_round,
            "lag_p50_ms": percentile(lag, 50) * 1000,
            "lag_p99_ms": percentile(lag, 99) * 1000,
            "return_after_s": returned,
            "requests": client.request_count,
        }


def run_one(count: int) -> dict[str, float]:
    with fake_server("--running", str(count)) as server:
        return asyncio.run(measure(server.base_url, server.api_key, server.control_url, count))


def run(sizes: tuple[int, ...] = SIZES) -> list[dict[str, float]]:
    rows = []
    for count in sizes:
        # A fresh process per size: RSS only grows, so one size's memory must not count toward the next.
        import json
        import subprocess

        out = subprocess.run(
            [sys.executable, "-c", f"import json, benchmarks.bench_scale as b; print(json.dumps(b.run_one({count})))"],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"scale {count}: {row}")
        rows.append(row)
    lines = [
        "## 2. Scale: concurrent waiters on one client",
        "",
        "`wait_for_many` over N workflow IDs that stay RUNNING, on one `PortableClient(max_concurrency=50)`, "
        f"polling every {POLL.maximum * (1 - POLL.jitter):g}-{POLL.maximum:g} s. Memory is resident-set growth "
        "after every waiter has polled once, divided by N (a fresh process per N). Loop lag is how late a 10 ms "
        "sleep wakes up, over 5 s of the steady state. Then the server finishes every workflow at once; the last "
        "column is the time until `wait_for_many` returns: each waiter has to poll once more to see it, so it is "
        "bounded by the poll interval and by how fast one client can send N requests. Targets: at most 3 KiB per "
        "waiter, lag p99 under 50 ms.",
        "",
        "| waiters | KiB per waiter | first round of polls (s) | loop lag p50 (ms) | loop lag p99 (ms) |"
        " return after completion (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['count']:,.0f} | **{row['kib_per_waiter']:.2f}** | {row['first_round_s']:.1f} | "
            f"{row['lag_p50_ms']:.1f} | **{row['lag_p99_ms']:.1f}** | {row['return_after_s']:.1f} |"
        )
    lines += ["", "Command: `python -m benchmarks scale`."]
    write_section("2-scale", "\n".join(lines))
    return rows


if __name__ == "__main__":
    run(tuple(int(a) for a in sys.argv[1:]) or SIZES)
