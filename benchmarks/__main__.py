"""Run the benchmarks and write docs/performance.md: ``python -m benchmarks [NAME ...]`` (NAME: see BENCHMARKS).

With no argument every benchmark runs (about half an hour on a 2-core machine), then the report is assembled.
Each benchmark saves its section under docs/bench-results/, so one can be re-run alone and the report rebuilt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from . import bench_economy, bench_overhead, bench_pacing, bench_scale, bench_schedule, report

BENCHMARKS: dict[str, Callable[[], object]] = {
    "overhead": bench_overhead.run,
    "scale": bench_scale.run,
    "economy": bench_economy.run,
    "schedule": bench_schedule.run,
    "pacing": bench_pacing.run,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    for name in chosen:
        if name == "report":
            continue
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} or report", file=sys.stderr)
            return 2
        BENCHMARKS[name]()
    report.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
