"""Pacing under real-world 429s: stray 429s, a sliding-window limit, a limit that moves, three clients sharing one.

Every scenario runs the fake Portable server in its own process and each client in its own process (so three
clients really are three processes), started together. The server logs every answer; each client samples the
rate its pacer allows every 0.1 s. Scenarios and targets (issue 9):

* ``stray``: no limit, 400 workflows (runs of 0.5-4 s), ``PollPolicy(initial=0.1, maximum=0.3)``,
  ``RetryPolicy(attempts=3, initial=0.05, maximum=0.2)``, client timeout 0.5 s, wait timeout 60 s; clean, then
  with 0.5%, 1% and 2% of answers a stray 429 (``Retry-After: 0``, and no header). Target: within 1.5x the clean
  time, no timeouts.
* ``limit50``: a sliding-window limit of 50 req/s, 1,000 workflows polled every 1-3 s for 30 s. Target: at least
  45 accepted req/s after the first 5 s, under 1% of requests answered 429 after the first 5 s.
* ``moving``: the same, with the limit at 100 req/s, 25 from 15 s, 100 again from 30 s, for 50 s. Target: under 5%
  429s in the 10 s after the drop; 80 accepted req/s within 15 s of the rise.
* ``shared``: three client processes (400 workflows each) sharing one 60 req/s limit, 30 s. Target: together at
  least 0.85 of the limit, under 3% 429s, each at least half a fair share (after the first 5 s).

``python -m benchmarks pacing`` runs them all and writes the section and docs/img/pacing.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from .common import IMG, ROOT, free_port, median, write_section

STRAY_RUNS = 3
STRAY_RATES = (0.005, 0.01, 0.02)
WARMUP = 5.0


# -- the server process -----------------------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    from portable_wait.testing import FakePortable

    schedule = [(float(t), float(r)) for t, r in (p.split(":") for p in args.limits.split(","))] if args.limits else []
    fake = FakePortable(port=args.port, api_key="bench-key", seed=args.seed)
    if args.stray:
        fake.add_fault("429", rate=args.stray, retry_after=None if args.header == "none" else args.header)
    state: dict[str, float] = {"go": 0.0}

    async def apply_schedule() -> None:
        for at, limit in schedule:
            await asyncio.sleep(max(0.0, state["go"] + at - fake.elapsed()))
            fake.rate_limit = limit

    async def control(request: web.Request) -> web.Response:
        command = request.query.get("do", "")
        if command == "go":
            rng = random.Random(args.seed)
            for wid in range(1, args.workflows + 1):
                fake.add_workflow(wid, running=rng.uniform(args.run_min, args.run_max))
            state["go"] = fake.elapsed()
            fake.requests.clear()
            if schedule:
                fake.rate_limit = schedule[0][1]
                asyncio.get_running_loop().create_task(apply_schedule())
            return web.json_response({"ok": True})
        if command == "records":
            go = state["go"]
            return web.json_response([[r.time - go, r.status, r.workflow_id] for r in fake.requests])
        return web.json_response({"error": "unknown command"}, status=400)

    await fake.start()
    app = web.Application()
    app.router.add_get("/control", control)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.control_port).start()
    print(f"ready {fake.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await fake.close()


# -- a client process --------------------------------------------------------------------------------------------


async def client(args: argparse.Namespace) -> None:
    from portable_wait import PollPolicy, PortableClient, RetryPolicy, WorkflowStatus, wait_for_many

    if args.kind == "stray":
        poll = PollPolicy(initial=0.1, maximum=0.3)
        options: dict[str, Any] = {"retry": RetryPolicy(attempts=3, initial=0.05, maximum=0.2), "request_timeout": 0.5}
    else:
        poll = PollPolicy(initial=1.0, maximum=3.0, jitter=0.3)
        options = {}
    ids = range(args.first, args.last + 1)
    print("ready", flush=True)
    sys.stdin.readline()  # started together: the orchestrator writes a line to every client at once
    start = time.monotonic()
    samples: list[tuple[float, float | None]] = []
    async with PortableClient("bench-key", base_url=args.base_url, **options) as c:

        async def sample() -> None:
            while True:
                samples.append((time.monotonic() - start, c._pacer.current_rate()))
                await asyncio.sleep(0.1)

        sampler = asyncio.get_running_loop().create_task(sample())
        results = await wait_for_many(c, ids, poll=poll, timeout=args.timeout, return_exceptions=True)
        elapsed = time.monotonic() - start
        sampler.cancel()
    failed = [type(v).__name__ for v in results.values() if not isinstance(v, WorkflowStatus)]
    print(json.dumps({"elapsed": elapsed, "failed": failed, "samples": samples}), flush=True)


# -- the orchestrator -------------------------------------------------------------------------------------------


def scenario(
    kind: str,
    *,
    workflows: int,
    run: tuple[float, float],
    clients: int = 1,
    limits: str = "",
    stray: float = 0.0,
    header: str = "0",
    timeout: float = 60.0,
    seed: int = 1,
) -> dict[str, Any]:
    """Run one scenario; return the server's records and each client's result."""
    port, control = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_pacing",
            "serve",
            f"--port={port}",
            f"--control-port={control}",
            f"--workflows={workflows * clients}",
            f"--run-min={run[0]}",
            f"--run-max={run[1]}",
            f"--limits={limits}",
            f"--stray={stray}",
            f"--header={header}",
            f"--seed={seed}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"pacing benchmark server did not start: {line!r}")
        base_url = line.split()[1]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_pacing",
                    "client",
                    f"--kind={kind}",
                    f"--base-url={base_url}",
                    f"--first={i * workflows + 1}",
                    f"--last={(i + 1) * workflows}",
                    f"--timeout={timeout}",
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(clients)
        ]
        for p in procs:  # every client has imported and is waiting, so they start together
            assert p.stdout is not None
            p.stdout.readline()
        _get(f"http://127.0.0.1:{control}/control?do=go")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=timeout + 60)
            results.append(json.loads(out.strip().splitlines()[-1]))
        records = json.loads(_get(f"http://127.0.0.1:{control}/control?do=records"))
    finally:
        server.terminate()
        server.wait(10)
    return {"records": records, "clients": results}


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        text: str = response.read().decode()
        return text


def accepted_per_second(records: Sequence[Sequence[Any]], end: float) -> list[int]:
    counts = [0] * (int(end) + 1)
    for t, status, _ in records:
        if status == 200 and 0 <= t < len(counts):
            counts[int(t)] += 1
    return counts


def share_429(records: Sequence[Sequence[Any]], start: float, end: float) -> tuple[float, int, int]:
    inside = [r for r in records if start <= r[0] < end]
    limited = sum(1 for r in inside if r[1] == 429)
    return (limited / len(inside) if inside else 0.0), limited, len(inside)


def run_stray() -> list[str]:
    configs = [("clean", 0.0, "0")] + [
        (f"{rate:.1%} `{label}`", rate, header)
        for rate in STRAY_RATES
        for label, header in (("Retry-After: 0", "0"), ("no header", "none"))
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    failures: dict[str, int] = {name: 0 for name, _, _ in configs}
    limited: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    for seed in range(1, STRAY_RUNS + 1):
        for name, rate, header in configs:  # interleaved, so machine load falls on all alike
            out = scenario("stray", workflows=400, run=(0.5, 4.0), stray=rate, header=header, seed=seed)
            result = out["clients"][0]
            times[name].append(result["elapsed"])
            failures[name] += len(result["failed"])
            limited[name].append(share_429(out["records"], 0, 1e9)[0])
            print(
                f"pacing stray seed {seed} {name}: {result['elapsed']:.2f} s, {len(result['failed'])} failed",
                flush=True,
            )
    clean = median(times["clean"])
    lines = [
        "| stray 429s | time (s), median | ratio to clean | worst run ratio | share 429 | timeouts or errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, _, _ in configs:
        t = median(times[name])
        lines.append(
            f"| {name} | {t:.2f} | **{t / clean:.2f}** | {max(times[name]) / clean:.2f} | "
            f"{median(limited[name]):.1%} | {failures[name]} |"
        )
    return lines


def run() -> dict[str, Any]:
    load_start = os.getloadavg()[0]
    stray_lines = run_stray()
    limit50 = scenario("limited", workflows=1000, run=(30.0, 30.0), limits="0:50", timeout=90)
    moving = scenario("limited", workflows=1000, run=(50.0, 50.0), limits="0:100,15:25,30:100", timeout=110)
    shared = scenario("limited", workflows=400, clients=3, run=(30.0, 30.0), limits="0:60", timeout=90)
    raw = Path(tempfile.gettempdir()) / "portable-wait-pacing.json"  # to re-plot or re-read without re-running
    raw.write_text(json.dumps({"limit50": limit50, "moving": moving, "shared": shared}))

    rec = limit50["records"]
    acc50 = sum(1 for r in rec if r[1] == 200 and WARMUP <= r[0] < 30) / (30 - WARMUP)
    s50 = share_429(rec, WARMUP, 30)
    rec = moving["records"]
    per_s = accepted_per_second(rec, 50)
    drop = share_429(rec, 15, 25)
    back = next((t - 30 for t in range(30, 50) if per_s[t] >= 80), None)
    rec = shared["records"]
    total = sum(1 for r in rec if r[1] == 200 and WARMUP <= r[0] < 30) / (30 - WARMUP)
    each = [
        sum(1 for r in rec if r[1] == 200 and WARMUP <= r[0] < 30 and i * 400 < r[2] <= (i + 1) * 400) / (30 - WARMUP)
        for i in range(3)
    ]
    sh = share_429(rec, WARMUP, 30)
    plot(limit50, moving, shared)
    lines = [
        "## 6. Pacing under 429s",
        "",
        "Each scenario runs the fake server and each client in separate processes (`benchmarks/bench_pacing.py`). "
        "The learned rate is described in `portable_wait/_pacing.py`'s docstring.",
        "",
        f"**Stray 429s, no limit** (400 workflows, runs of 0.5-4 s, `PollPolicy(initial=0.1, maximum=0.3)`, "
        f"`RetryPolicy(attempts=3, initial=0.05, maximum=0.2)`, client timeout 0.5 s, wait timeout 60 s; median of "
        f"{STRAY_RUNS} interleaved runs). Target: within 1.5x the clean time, no timeouts.",
        "",
        *stray_lines,
        "",
        "A 429 without `Retry-After` pauses the client in proportion to how often 429s come: none for a stray "
        "(a 429 share up to 5%), up to 1 s for a cluster.",
        "",
        "**Rate limits** (a true sliding-window limit; beyond it the fake answers 429 with `Retry-After: 1`; "
        "1,000 workflows polled every 1-3 s per client, demand far above the limit).",
        "",
        "| scenario | target | measured |",
        "| --- | --- | --- |",
        f"| limit 50 req/s, after 5 s | ≥ 45 accepted req/s | **{acc50:.1f}** req/s |",
        f"| limit 50 req/s, after 5 s | < 1% answered 429 | **{s50[0]:.2%}** ({s50[1]} of {s50[2]}) |",
        f"| limit 100 → 25 at 15 s, 10 s after the drop | < 5% answered 429 | **{drop[0]:.1%}** "
        f"({drop[1]} of {drop[2]}) |",
        f"| limit 25 → 100 at 30 s | ≥ 80 accepted req/s within 15 s | **{back}** s "
        f"(mean {sum(per_s[45:50]) / 5:.0f} req/s over 45-50 s) |",
        f"| 3 processes, one 60 req/s limit, after 5 s | together ≥ 51 req/s | **{total:.1f}** req/s |",
        f"| same | < 3% answered 429 | **{sh[0]:.2%}** ({sh[1]} of {sh[2]}) |",
        f"| same | each ≥ 10 req/s (half a fair share) | **{', '.join(f'{e:.1f}' for e in each)}** req/s |",
        "",
        "The shared-limit figures vary from run to run. Before this release's last pacer changes (no capacity "
        "from a client's first second, a cut when the server's pauses take over 20% of a client's time, no "
        "unpaced burst after a small rate doubles), one client in about three runs of eight got under half a "
        "fair share (7.7 to 8.7 req/s; traced once: 58, 1 and 1 req/s after a probing client went unpaced). "
        "After them, three runs of the shared scenario alone on a machine loaded to 6-8 gave each "
        "24.4/16.2/15.3, 18.4/16.4/18.3 and 21.2/16.5/14.4 req/s, together 52.1 to 55.8, with 0.4% to 0.7% "
        "429s; `python -m benchmarks pacing-sim` (section 6b) puts the remaining risk at 2 seeds in 16.",
        "",
        "![allowed vs accepted rate over time](img/pacing.png)",
        "",
        f"The machine's 2 cores are shared with other jobs; the 1-minute load average was {load_start:.1f} when "
        f"this run started and {os.getloadavg()[0]:.1f} when it ended (a busy machine lowers the accepted rates "
        "a little: the client and the server compete for the cores). Command: `python -m benchmarks pacing` "
        "(about 8 minutes).",
    ]
    write_section("6-pacing", "\n".join(lines))
    return {"limit50": acc50, "moving": back}


def plot(limit50: dict[str, Any], moving: dict[str, Any], shared: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(9, 9))
    panels = [
        (limit50, 30, "limit 50 req/s", [(0, 30, 50)]),
        (moving, 50, "limit 100 → 25 → 100 req/s", [(0, 15, 100), (15, 30, 25), (30, 50, 100)]),
        (shared, 30, "3 client processes sharing 60 req/s", [(0, 30, 60)]),
    ]
    for ax, (data, end, title, steps) in zip(axes, panels, strict=True):
        per_s = accepted_per_second(data["records"], end)
        ax.step(range(len(per_s)), per_s, where="post", color="tab:blue", label="accepted by the server (req/s)")
        limited = [0] * (end + 1)
        for t, status, _ in data["records"]:
            if status == 429 and 0 <= t < len(limited):
                limited[int(t)] += 1
        ax.bar(range(len(limited)), limited, width=0.8, align="edge", color="tab:red", label="429s per second")
        for i, c in enumerate(data["clients"]):
            ts = [s[0] for s in c["samples"] if s[1] is not None]
            rs = [s[1] for s in c["samples"] if s[1] is not None]
            ax.plot(ts, rs, ".", markersize=2, color=f"C{2 + i}", label=f"allowed by client {i + 1}'s pacer")
        for a, b, limit in steps:
            ax.hlines(limit, a, b, colors="black", linestyles="dashed", linewidth=0.8)
        ax.set_ylim(0, max(max(per_s), max(s for _, _, s in steps)) * 1.6)
        ax.set_xlim(0, end)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("req/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds (dashed: the server's limit)")
    fig.tight_layout()
    fig.savefig(IMG / "pacing.png", dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pacing")
    sub = parser.add_subparsers(dest="mode")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--control-port", type=int, required=True)
    s.add_argument("--workflows", type=int, required=True)
    s.add_argument("--run-min", type=float, required=True)
    s.add_argument("--run-max", type=float, required=True)
    s.add_argument("--limits", default="")
    s.add_argument("--stray", type=float, default=0.0)
    s.add_argument("--header", default="0")
    s.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("client")
    c.add_argument("--kind", choices=("stray", "limited"), required=True)
    c.add_argument("--base-url", required=True)
    c.add_argument("--first", type=int, required=True)
    c.add_argument("--last", type=int, required=True)
    c.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        asyncio.run(serve(args))
    elif args.mode == "client":
        asyncio.run(client(args))
    else:
        run()


if __name__ == "__main__":
    main(sys.argv[1:])
