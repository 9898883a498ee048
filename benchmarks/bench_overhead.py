"""Per-poll overhead: PortableClient.get_workflow_status against a bare aiohttp loop, same server, same run.

The bare loop is what a hand-written poller does: ``session.get``, read, ``json.loads``. Throughput is requests
per second of wall time; CPU is the client process's CPU time per request (the server runs in another
process), which isolates the client's own cost from the server's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp

from portable_wait import PortableClient

from .common import fake_server, median, write_section

CONCURRENCY = (1, 10, 100)
COLUMNS = (
    "Each run times both loops back to back. The req/s and CPU columns are each the median of the runs; "
    "*median of per-run ratios* is the median of the runs' own throughput ratios (portable-wait / bare), which "
    "cancels drift in the machine's speed between runs and is what the target is checked against; *ratio of "
    "medians* divides the two req/s columns; *CPU ratio* divides the two CPU columns. The two throughput ratios "
    "differ when the machine's speed varies from run to run, as on a shared 2-core machine."
)
PROFILE = (
    "Where the time goes is in the next section, a cProfile of the concurrency-10 loop "
    "(`python -m benchmarks profile`). No tenacity object is built unless a first attempt fails, and no pacing "
    "happens unless a rate limit is set or a 429 was seen."
)
REQUESTS = 3000
RUNS = 5


async def bare(base_url: str, key: str, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(wid: int) -> None:
            async with session.get(f"{base_url}/v2/workflows/{wid}/status") as response:
                json.loads(await response.read())

        return await drive(one, concurrency)


async def ours(base_url: str, key: str, concurrency: int) -> tuple[float, float]:
    async with PortableClient(key, base_url=base_url, max_concurrency=concurrency) as client:

        async def one(wid: int) -> None:
            await client.get_workflow_status(wid)

        return await drive(one, concurrency)


async def drive(one: Callable[[int], Awaitable[None]], concurrency: int) -> tuple[float, float]:
    for wid in range(1, 51):  # warm up: connections, caches
        await one(wid)
    remaining = REQUESTS

    async def worker(offset: int) -> None:
        nonlocal remaining
        wid = offset
        while remaining > 0:
            remaining -= 1
            await one(wid % 100 + 1)
            wid += concurrency

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return REQUESTS / wall, cpu / REQUESTS * 1e6


def run() -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    with fake_server("--running", "100") as server:
        for concurrency in CONCURRENCY:
            samples: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
            for _ in range(RUNS):  # interleaved, so drift in the machine's speed hits both alike
                samples["bare"].append(asyncio.run(bare(server.base_url, server.api_key, concurrency)))
                samples["ours"].append(asyncio.run(ours(server.base_url, server.api_key, concurrency)))
            row = {
                f"{name}_{metric}": median([s[i] for s in values])
                for name, values in samples.items()
                for i, metric in enumerate(("rps", "cpu_us"))
            }
            row["ratio"] = median([o[0] / b[0] for o, b in zip(samples["ours"], samples["bare"], strict=True)])
            row["cpu_ratio"] = row["ours_cpu_us"] / row["bare_cpu_us"]
            results[concurrency] = row
            print(f"overhead c={concurrency}: {row}")
    lines = [
        "## 1. Per-poll overhead",
        "",
        f"`client.get_workflow_status` against a bare aiohttp loop (GET, read, `json.loads`) on the same fake server "
        f"(a separate process), {REQUESTS} requests per run, medians of {RUNS} interleaved runs. Target: at least "
        "0.9 of the bare loop's throughput at concurrency 10.",
        "",
        "",
        COLUMNS,
        "",
        "| concurrency | bare req/s | portable-wait req/s | median of per-run ratios | ratio of medians |"
        " bare CPU µs/req | portable-wait CPU µs/req | CPU ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for concurrency, row in results.items():
        lines.append(
            f"| {concurrency} | {row['bare_rps']:,.0f} | {row['ours_rps']:,.0f} | **{row['ratio']:.2f}** | "
            f"{row['ours_rps'] / row['bare_rps']:.2f} | {row['bare_cpu_us']:.0f} | {row['ours_cpu_us']:.0f} | "
            f"{row['cpu_ratio']:.2f} |"
        )
    lines += ["", PROFILE, "", "Command: `python -m benchmarks overhead`."]
    write_section("1-overhead", "\n".join(lines))
    return results


if __name__ == "__main__":
    run()
