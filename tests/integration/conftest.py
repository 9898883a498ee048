"""Fixtures for the command-line tests: a fake server in a thread, and the command run in this process."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator

import pytest

from portable_wait.cli import main
from portable_wait.testing import FakePortable

# Small poll intervals for the command (its defaults are for people).
FAST = ["--poll-initial", "0.01", "--poll-max", "0.05"]

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def fake() -> Iterator[FakePortable]:
    """A fake server on its own thread, for a blocking caller (the command, in this process or another)."""
    server = FakePortable()
    with server.run_in_thread():
        yield server


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[RunCli]:
    """Run ``portable-wait ARGS`` through ``main()`` in this process, with the environment a subprocess would get.

    The same code path as the command without an interpreter's start-up (about a second each on a loaded 2-core
    machine). What needs a real process (Ctrl-C, the entry point's exit status, no key in a child's output) keeps
    a subprocess test. Captured stdout is not a terminal, as a pipe is not.
    """
    logger = logging.getLogger("portable_wait")
    saved = (logger.handlers[:], logger.level, logger.propagate)

    def run(fake: FakePortable | None, *args: str, key: bool = True) -> subprocess.CompletedProcess[str]:
        for name in ("PORTABLE_API_KEY", "PORTABLE_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        if fake is not None:
            monkeypatch.setenv("PORTABLE_BASE_URL", fake.base_url)
            if key:
                monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["portable-wait", *args], code, out, err)

    yield run
    # main() configures the portable_wait logger for a terminal; put it back for the next test.
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
