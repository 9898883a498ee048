"""The pacer against simulated sliding-window limiters: the section 6 scenarios, many seeds, in seconds.

``python -m benchmarks pacing`` runs real processes for about ten minutes, one run per scenario, and its
shared-limit result varies from run to run. This simulation runs the same `Pacer` on an injected clock against a
true sliding one-second window that answers 429 with ``Retry-After: 1`` (as the fake server does), with
greedy senders (Poisson demand), at most 10 requests in flight per client (the default ``max_concurrency``)
and round trips of 4-6 ms (a server on the same machine), over many seeds, so a change to the pacer's
model can be judged on its failure rate rather than on one run. It models neither the wait hub's poll schedule
nor event-loop delays: use it to compare designs, and the real benchmark to measure one.

Scenarios and targets (issue 9), judged after the first 5 s:

* ``limit50``: one client, demand 500 req/s, limit 50 req/s for 30 s: accepted ≥ 45 req/s, under 1% 429s.
* ``moving``: one client, demand 500 req/s, limit 100, 25 from 15 s, 100 from 30 s: under 5% 429s in the 10 s
  after the drop, back to ≥ 80 accepted req/s within 15 s of the rise.
* ``shared``: three clients, demand 200 req/s each, one 60 req/s limit for 30 s: together ≥ 51 req/s (0.85 of
  it), under 3% 429s, each ≥ 10 req/s (half a fair share).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence

from portable_wait._pacing import Pacer

from .bench_pacing import WARMUP, share_429
from .common import write_section

SEEDS = 16
RTT = 0.005
IN_FLIGHT = 10

Record = tuple[float, int, int]  # (time, HTTP status, client), as the benchmark's server records (time, status, id)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def steps(*pairs: tuple[float, float]) -> Callable[[float], float]:
    """A limit that changes over time: ``steps((0, 100), (15, 25))`` is 100 req/s, then 25 from 15 s on."""

    def limit(t: float) -> float:
        current = pairs[0][1]
        for start, value in pairs:
            if t >= start:
                current = value
        return current

    return limit


def simulate(
    seed: int, *, clients: int, demand: float, seconds: float, limit: Callable[[float], float], rtt: float = RTT
) -> list[Record]:
    """Run ``clients`` pacers against one sliding-window limit; return every request's (time, status, client)."""
    rng = random.Random(seed)
    clock = _Clock()
    pacers = [Pacer(None, clock=clock) for _ in range(clients)]
    window: deque[float] = deque()
    records: list[Record] = []
    wants = [rng.uniform(0, 0.05) for _ in range(clients)]  # when each client next has a request due
    answers: list[tuple[float, int, float, int]] = []  # (time, client, sent, status), a heap
    in_flight = [0] * clients
    t = 0.0
    while True:
        # The next event: an answer arriving, or the client whose next request the pacer lets go first.
        client, at = -1, answers[0][0] if answers else float("inf")
        for i, pacer in enumerate(pacers):
            if in_flight[i] >= IN_FLIGHT:
                continue
            due = max(wants[i], t)
            wait = pacer.delay(due)
            leaves = due + wait + 1e-6 if wait > 0 else due
            if leaves < at:
                client, at = i, leaves
        t = clock.now = at
        if t >= seconds:
            return records
        if client < 0:
            _, who, sent, status = heapq.heappop(answers)
            in_flight[who] -= 1
            if status == 200:
                pacers[who].on_success()
            else:
                pacers[who].on_rate_limited(1.0, sent_at=sent)
            continue
        pacer = pacers[client]
        if pacer.delay(t) > 0:
            continue
        sent = pacer.count_send(t)
        while window and t - window[0] >= 1.0:
            window.popleft()
        status = 429 if len(window) >= limit(t) else 200
        if status == 200:
            window.append(t)
        records.append((t, status, client))
        heapq.heappush(answers, (t + rtt * rng.uniform(0.8, 1.2), client, sent, status))
        in_flight[client] += 1
        wants[client] = t + rng.expovariate(demand)


def accepted(records: Sequence[Record], start: float, end: float, client: int | None = None) -> float:
    """Accepted requests per second in [start, end), of one client or all."""
    n = sum(1 for t, s, c in records if start <= t < end and s == 200 and (client is None or c == client))
    return n / (end - start)


def run(seeds: int = SEEDS) -> dict[str, int]:
    rows: list[str] = []
    failures = {"limit50": 0, "moving": 0, "shared": 0}
    for seed in range(seeds):
        r = simulate(seed, clients=1, demand=500, seconds=30, limit=steps((0, 50)))
        a50, q50 = accepted(r, WARMUP, 30), share_429(r, WARMUP, 30)[0]
        r = simulate(seed, clients=1, demand=500, seconds=50, limit=steps((0, 100), (15, 25), (30, 100)))
        drop = share_429(r, 15, 25)[0]
        back = next((s - 30 for s in range(30, 50) if accepted(r, s, s + 1) >= 80), None)
        r = simulate(seed, clients=3, demand=200, seconds=30, limit=steps((0, 60)))
        each = [accepted(r, WARMUP, 30, c) for c in range(3)]
        q3 = share_429(r, WARMUP, 30)[0]
        bad = {
            "limit50": not (a50 >= 45 and q50 < 0.01),
            "moving": not (drop < 0.05 and back is not None and back <= 15),
            "shared": not (sum(each) >= 51 and q3 < 0.03 and min(each) >= 10),
        }
        for name, failed in bad.items():
            failures[name] += failed
        mark = {name: " ✗" if failed else "" for name, failed in bad.items()}
        rows.append(
            f"| {seed} | {a50:.1f}, {q50:.2%}{mark['limit50']} | {drop:.1%}, {back if back is not None else '>19'} s"
            f"{mark['moving']} | {', '.join(f'{e:.1f}' for e in each)}; {sum(each):.1f}, {q3:.1%}{mark['shared']} |"
        )
        print(rows[-1])
    lines = [
        "## 6b. Pacing, simulated",
        "",
        "The section 6 scenarios against a simulated sliding-window limiter (`benchmarks/sim_pacing.py`: the "
        "same `Pacer` on an injected clock, `Retry-After: 1` on every 429, Poisson demand, at most 10 "
        f"requests in flight per client, 4-6 ms round trips), {seeds} seeds each, so a change to the model is "
        "judged on its failure rate, not on one run. It models neither the hub's poll schedule nor event-loop "
        "delays. ✗ marks a seed that misses a target.",
        "",
        "| seed | limit 50: accepted req/s, 429s | 100→25→100: 429s after the drop, back to 80 | "
        "3 clients on 60: each, together req/s, 429s |",
        "| ---: | --- | --- | --- |",
        *rows,
        "",
        f"Seeds missing a target: limit 50 {failures['limit50']}, moving limit {failures['moving']}, shared limit "
        f"{failures['shared']} of {seeds}.",
        "",
        "Command: `python -m benchmarks pacing-sim` (a few seconds).",
    ]
    write_section("6b-pacing-sim", "\n".join(lines))
    return failures


if __name__ == "__main__":
    run()
