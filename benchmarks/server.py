"""A FakePortable in its own process, for benchmarks: ``python -m benchmarks.server --port P [...]``.

Modes: ``--running N`` adds workflows 1..N that stay RUNNING until told otherwise over ``/control``;
``--rate-limit R`` makes it answer 429 beyond R requests per second; ``--economy N --seed S`` adds N workflows
with log-normal durations, for the API-economy benchmark, and serves their completion times at ``/control``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random

from aiohttp import web

from portable_wait.testing import FakePortable


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--running", type=int, default=0)
    parser.add_argument("--rate-limit", type=float, default=None)
    parser.add_argument("--economy", type=int, default=0)
    parser.add_argument("--median", type=float, default=20.0)
    parser.add_argument("--sigma", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fake = FakePortable(port=args.port, rate_limit=args.rate_limit, api_key="bench-key")
    for wid in range(1, args.running + 1):
        fake.add_workflow(wid, running=math.inf, resources={"users": 100})
    rng = random.Random(args.seed)
    for wid in range(1, args.economy + 1):
        duration = rng.lognormvariate(math.log(args.median), args.sigma)
        fake.add_workflow(wid, pending=min(2.0, duration / 10), running=duration, resources={"users": 100})

    async def control(request: web.Request) -> web.Response:
        command = request.query.get("do", "")
        if command == "finish":
            for wid in range(int(request.query["first"]), int(request.query["last"]) + 1):
                fake.finish(wid)
            return web.json_response({"ok": True})
        if command == "stats":
            statuses: dict[int, int] = {}
            for record in fake.requests:
                statuses[record.status] = statuses.get(record.status, 0) + 1
            completed = {wid: w.last["completedAt"] for wid, w in fake.workflows.items() if w.last is not None}
            return web.json_response({"requests": len(fake.requests), "statuses": statuses, "completed": completed})
        if command == "reset":
            fake.requests.clear()
            return web.json_response({"ok": True})
        return web.json_response({"error": "unknown command"}, status=400)

    await fake.start()
    assert fake._runner is not None
    # The control endpoint lives on a second port so it never counts as API traffic.
    app = web.Application()
    app.router.add_get("/control", control)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.control_port)
    await site.start()
    print(f"ready {fake.base_url} {fake.api_key}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await fake.close()


if __name__ == "__main__":
    asyncio.run(main())
