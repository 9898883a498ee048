"""docs/performance.md is generated from docs/bench-results/, reproducibly; benchmarks check their needs first."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import report
from benchmarks.__main__ import BENCHMARKS, INSTALL_BENCH

from ._blocking import ROOT, run_python


def test_performance_page_is_exactly_what_the_stored_results_generate() -> None:
    assert (ROOT / "docs" / "performance.md").read_text() == report.render(), "run: make bench-report"


def test_report_takes_every_section_in_numeric_order(tmp_path: Path) -> None:
    for name in ("10-otel", "2-scale", "1b-profile", "5-pacing", "1-overhead", "notes"):
        (tmp_path / f"{name}.md").write_text(f"## {name}\n")
    page = report.render(tmp_path)
    titles = re.findall(r"^## (\S+)$", page, flags=re.M)
    assert titles == ["1-overhead", "1b-profile", "2-scale", "5-pacing", "10-otel", "notes"]


def test_overhead_ratio_columns_agree_with_what_they_say() -> None:
    section = (ROOT / "docs" / "bench-results" / "1-overhead.md").read_text()
    assert "median of per-run ratios" in section and "ratio of medians" in section
    rows = [line for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    assert rows
    for row in rows:
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
        bare, ours, ratio_of_medians = float(cells[1].replace(",", "")), float(cells[2].replace(",", "")), cells[4]
        bare_cpu, ours_cpu, cpu_ratio = float(cells[5]), float(cells[6]), float(cells[7])
        assert abs(ours / bare - float(ratio_of_medians)) <= 0.01, row
        assert abs(ours_cpu / bare_cpu - cpu_ratio) <= 0.01, row


def test_every_section_names_the_command_that_produced_it() -> None:
    for path in report.sections():
        commands = re.findall(r"Command: `python -m benchmarks ([\w-]+)`", path.read_text())
        assert commands and all(c in BENCHMARKS for c in commands), path.name
    assert "python -m benchmarks profile" in (ROOT / "docs" / "bench-results" / "1-overhead.md").read_text()


def test_plotting_benchmarks_without_matplotlib_stop_before_any_work() -> None:
    result = run_python(
        """
        import sys
        from benchmarks.__main__ import main
        sys.exit(main(["overhead", "economy"]))
        """,
        block=("matplotlib",),
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert INSTALL_BENCH in result.stderr and "economy" in result.stderr
    assert result.stdout == ""  # the overhead benchmark did not run first
