"""Run the benchmarks and write docs/performance.md: ``python -m benchmarks [NAME ...]``.

Names: overhead, profile, scale, economy, schedule, hub, pacing, pacing-sim, report. With no name every benchmark runs
(about an hour on a 2-core machine), then the report is assembled; ``report`` alone rebuilds docs/performance.md
from the stored sections without running anything. Each benchmark saves its section under docs/bench-results/,
so one can be re-run alone and the report rebuilt. Requirements are checked before anything runs: the plots need the
``bench`` extra (matplotlib).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

from . import (
    bench_economy,
    bench_hub,
    bench_overhead,
    bench_pacing,
    bench_profile,
    bench_scale,
    bench_schedule,
    report,
    sim_pacing,
)

BENCHMARKS: dict[str, Callable[[], object]] = {
    "overhead": bench_overhead.run,
    "profile": bench_profile.run,
    "scale": bench_scale.run,
    "economy": bench_economy.run,
    "schedule": bench_schedule.run,
    "hub": bench_hub.run,
    "pacing": bench_pacing.run,
    "pacing-sim": sim_pacing.run,
}
NEEDS_MATPLOTLIB = frozenset({"economy", "schedule", "pacing"})  # they draw plots into docs/img/
INSTALL_BENCH = "pip install -e '.[bench]'"


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ImportError:  # a parent package that is broken or blocked
        return True


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return 0
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name != "report" and name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)} or report", file=sys.stderr)
        return 2
    plotting = sorted(NEEDS_MATPLOTLIB.intersection(chosen))
    if plotting and _missing("matplotlib"):
        print(
            f"benchmarks {', '.join(plotting)} draw plots with matplotlib, which is not installed: "
            f"{INSTALL_BENCH} (or run make bench)",
            file=sys.stderr,
        )
        return 2
    for name in chosen:
        if name != "report":
            BENCHMARKS[name]()
    report.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
