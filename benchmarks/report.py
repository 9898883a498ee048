"""Assemble docs/performance.md from the sections the benchmarks saved."""

from __future__ import annotations

from .common import DOCS, RESULTS

HEADER = """# Performance

What a waiter costs decides whether people can point it at a thousand workflows: CPU per poll, memory per
waiter, requests per answer. Each benchmark below runs its contenders side by side in the same run, against the
fake Portable server in a separate process, and reports ratios to a baseline measured in that run. Reproduce
everything with `make bench` (about half an hour on 2 cores), or one part with
`python -m benchmarks overhead|scale|economy|schedule|pacing`; the sections are saved under `docs/bench-results/` and
this page is rebuilt from them.

The benchmarks are never part of `make test`: timing assertions in a test suite only make it flaky.
"""


def write() -> None:
    sections = sorted(RESULTS.glob("*.md")) if RESULTS.exists() else []
    body = "\n\n".join(p.read_text().rstrip() for p in sections)
    (DOCS / "performance.md").write_text(HEADER + "\n" + (body or "_No results yet: run `make bench`._") + "\n")


if __name__ == "__main__":
    write()
