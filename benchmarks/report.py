"""Assemble docs/performance.md from the sections the benchmarks saved under docs/bench-results/.

Every ``docs/bench-results/*.md`` is included, ordered by its leading number (``2-scale.md`` before
``10-otel.md``; ``1b-profile.md`` after ``1-overhead.md``), so a new benchmark only has to write its section.
The page is generated, never edited: `render` of the stored sections reproduces it byte for byte, which a test
checks.
"""

from __future__ import annotations

import re
from pathlib import Path

from .common import DOCS, RESULTS

HEADER = """# Performance

What a waiter costs decides whether people can point it at a thousand workflows: CPU per poll, memory per
waiter, requests per answer. Each benchmark below runs its contenders side by side in the same run, against the
fake Portable server in a separate process, and reports ratios to a baseline measured in that run. Reproduce
everything with `make bench` (about half an hour on 2 cores), or one part with `python -m benchmarks NAME`
(`python -m benchmarks --help` lists them); each saves its section under `docs/bench-results/`, and
`make bench-report` (`python -m benchmarks report`) rebuilds this page from those sections without running
anything. This page is generated: edit the benchmark or its stored section, never this file.
Every section was measured with the wait hub (issue 11), section 5 side by side with the code before it,
except section 4, which simulates the poll schedule in virtual time, whatever drives it.

The benchmarks are never part of `make test`: timing assertions in a test suite only make it flaky.
"""


def _order(path: Path) -> tuple[int, str]:
    match = re.match(r"(\d+)(.*)", path.stem)
    return (int(match.group(1)), match.group(2)) if match else (1 << 30, path.stem)


def sections(results: Path = RESULTS) -> list[Path]:
    """The stored sections, in the order the page shows them."""
    return sorted(results.glob("*.md"), key=_order) if results.exists() else []


def render(results: Path = RESULTS) -> str:
    """Return docs/performance.md as the stored sections make it."""
    body = "\n\n".join(p.read_text().rstrip() for p in sections(results))
    return HEADER + "\n" + (body or "_No results yet: run `make bench`._") + "\n"


def write() -> None:
    (DOCS / "performance.md").write_text(render())


if __name__ == "__main__":
    write()
