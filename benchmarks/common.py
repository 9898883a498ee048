"""Shared plumbing: a fake Portable server in its own process, machine facts, medians, the report."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
IMG = DOCS / "img"
RESULTS = DOCS / "bench-results"


@dataclass
class Server:
    base_url: str
    api_key: str
    control_url: str
    process: subprocess.Popen[str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def fake_server(*args: str) -> Iterator[Server]:
    """Run ``python -m benchmarks.server`` (a FakePortable) in a separate process; yield its URL and key."""
    port, control = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--port", str(port), "--control-port", str(control), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.match(r"ready (\S+) (\S+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"benchmark server did not start: {line!r}")
    try:
        yield Server(match.group(1), match.group(2), f"http://127.0.0.1:{control}/control", process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_section(name: str, markdown: str) -> None:
    """Save one benchmark's section; `benchmarks.report` assembles docs/performance.md from them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (RESULTS / f"{name}.md").write_text(f"{markdown.rstrip()}\n\n_Measured {stamp} on {machine()}._\n")
